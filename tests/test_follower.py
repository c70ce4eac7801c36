"""The follower core: IEC 61851-1 pilot rules, contactor, timers and the leader watchdog."""
from hypothesis import given, settings
from hypothesis import strategies as st

import wire
from test_protocol import F_EPOCH, KEY, UID, new_follower, run

C_MV, B_MV, A_MV = 6000, 9000, 12000
DIODE, NO_DIODE = -12000, -9000


def cmd(seq, current_a, fallback_a=6, flags=0):
    return wire.command(KEY, UID, 3, seq, F_EPOCH, int(current_a * 10), int(fallback_a * 10), flags=flags).hex()


UNCOUNTED_L2_L3 = 0b1100  # COMMAND flags bits 1-3: the charger's L1-L3 the leader does not count


def every(t0, t1, step, *event):
    return [(t, *event) for t in range(t0, t1, step)]


def car(t0, t1, high, low=DIODE, step=20):
    # The shell samples the pilot every 20 ms and ticks with it.
    out = []
    for t in range(t0, t1, step):
        out += [(t, "sample", high, low), (t, "tick")]
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 100_000), min_size=1, max_size=50))
def test_duty_never_offers_more_and_never_below_the_minimum(vm, currents):
    res = vm.call("pilot", ma=currents)
    for ma, duty, back in zip(currents, res["duty"], res["back"]):
        assert duty == 10000 or 1000 <= duty <= 9600, (ma, duty)
        assert back <= ma, (ma, duty, back)
        if ma < 6000:
            assert duty == 10000
        elif 51000 < ma < 52500:
            assert back == 51000  # the standard's two ranges leave a gap: 85 % is 51 A
        elif ma <= 80000:
            assert back >= ma - 150  # within the duty's resolution (0.01 % = 6 or 25 mA)


def test_duty_for_common_currents(vm):
    res = vm.call("pilot", ma=[6000, 16000, 32000, 51000, 63000, 80000, 5900, 0])
    assert res["duty"] == [1000, 2666, 5333, 8500, 8920, 9600, 10000, 10000]


def test_pilot_states_with_hysteresis(vm):
    levels = [[12000, ""], [9000, ""], [6000, ""], [3000, ""], [0, ""], [-12000, ""],
              [7600, "C"], [7600, ""], [7400, "B"], [7000, "B"], [10700, "B"], [11000, "B"]]
    assert vm.call("pilot", levels=levels)["states"] == \
        ["A", "B", "C", "D", "E", "F", "C", "B", "B", "C", "B", "A"]


def test_contactor_closes_in_c_only_after_the_diode_check(vm):
    new_follower(vm)
    res = run(vm, (0, "recv", cmd(1, 16)), *car(0, 500, B_MV), *car(500, 1000, C_MV))
    closed = [t["contactor"] for t in res["trace"]]
    assert not any(t["contactor"] for t in res["trace"] if t["state"] == "B")
    assert closed[-1]


def test_a_missing_diode_keeps_the_contactor_open(vm):
    new_follower(vm)
    res = run(vm, (0, "recv", cmd(1, 16)), *car(0, 3000, C_MV, NO_DIODE))
    assert not any(t["contactor"] for t in res["trace"])
    assert res["end"]["errors"] & 1


def test_contactor_opens_within_100_ms_when_the_car_goes_back_to_b(vm):
    new_follower(vm)
    res = run(vm, (0, "recv", cmd(1, 16)), *car(0, 1000, C_MV), *car(1000, 1500, B_MV))
    opened = [t for t in res["trace"][1:] if t["state"] == "B" and not t["contactor"]]
    first_b = next(i for i, t in enumerate(res["trace"]) if i > 10 and t["state"] == "B")
    assert not res["trace"][first_b]["contactor"] and opened


def test_paused_but_still_drawing_opens_after_6_s(vm):
    new_follower(vm)
    events = [(0, "recv", cmd(1, 16))] + car(0, 1000, C_MV) + [(1000, "recv", cmd(2, 0, 0))]
    events += car(1000, 8000, C_MV, step=100)
    res = run(vm, *events)
    trace = res["trace"]
    at = {e[0]: t for e, t in zip(events, trace) if e[1] == "tick"}
    assert at[1000]["offered"] == 0 and at[1000]["duty"] == 10000
    assert at[6900]["contactor"] and not at[7000]["contactor"]


def test_increase_at_most_every_5_s_decrease_at_once(vm):
    new_follower(vm)
    events = [(0, "recv", cmd(1, 10))] + car(0, 1000, C_MV, step=100)
    events += [(1000, "recv", cmd(2, 20))] + car(1000, 7000, C_MV, step=100)
    events += [(7000, "recv", cmd(3, 8))] + car(7000, 7200, C_MV, step=100)
    res = run(vm, *events)
    offered = {e[0]: t["offered"] for e, t in zip(events, res["trace"]) if e[1] == "tick"}
    assert offered[900] == 10000
    assert offered[4900] == 10000 and offered[5000] == 20000  # 5 s after the first offer
    assert offered[7000] == 8000  # a decrease at once


def test_after_a_pause_no_restart_before_the_minimum_pause(vm):
    new_follower(vm)
    events = [(0, "recv", cmd(1, 16))] + car(0, 1000, C_MV, step=100)
    events += [(1000, "recv", cmd(2, 0, 0))]
    for t in range(1500, 62000, 500):  # the leader asks for 16 A again, every half second
        events += [(t, "recv", cmd(t, 16)), (t, "sample", C_MV, DIODE), (t, "tick")]
    res = run(vm, *events)
    offered = {e[0]: t["offered"] for e, t in zip(events, res["trace"]) if e[1] == "tick"}
    assert offered[1500] == 0 and offered[60500] == 0 and offered[61000] == 16000


def test_silent_leader_means_fallback_within_10_s(vm):
    new_follower(vm)
    events = [(0, "recv", cmd(1, 20, 8))] + car(0, 12000, C_MV, step=100)
    res = run(vm, *events)
    state = {e[0]: t for e, t in zip(events, res["trace"]) if e[1] == "tick"}
    assert state[9900]["offered"] == 20000 and not state[9900]["at_fallback"]
    assert state[10000]["at_fallback"] and state[10000]["offered"] == 8000


def test_never_commanded_means_nothing_offered(vm):
    new_follower(vm)
    res = run(vm, *car(0, 12000, C_MV, step=100))
    assert all(t["offered"] == 0 and t["duty"] == 10000 for t in res["trace"])
    assert res["end"]["at_fallback"]


def test_state_on_every_change_and_at_least_once_a_second(vm):
    new_follower(vm)
    events = car(0, 5100, B_MV, step=100) + [(5050, "recv", cmd(1, 16))] + car(5100, 6500, B_MV, step=100)
    res = run(vm, *events)
    sent = [e[0] for e, t in zip(events, res["trace"]) if e[1] == "tick" and t["sent"]]
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert max(gaps) <= 1000
    assert 5000 in sent and 5100 in sent  # the periodic one, then the new offer at once
    assert 5200 not in sent  # nothing changed since: the next one a second later


def test_a_report_says_the_command_held_while_its_increase_waits(vm):
    # The leader counts a decrease as followed only once nothing above it is held: a follower
    # whose 20 A waits out its 5 s gap must not report its 10 A offer alone.
    new_follower(vm)
    events = [(0, "recv", cmd(1, 10))] + car(0, 1000, C_MV, step=100)
    events += [(1000, "recv", cmd(2, 20))] + car(1000, 2100, C_MV, step=100)
    res = run(vm, *events)
    assert res["end"]["offered"] == 10000
    applied = [wire.read_state(bytes.fromhex(t["sent"]), KEY)["applied_da"] * 100
               for e, t in zip(events, res["trace"]) if e[1] == "tick" and t["sent"]]
    assert applied[-1] == 20000


def test_a_pilot_fault_forgets_the_diode_check(vm):
    new_follower(vm)
    events = [(0, "recv", cmd(1, 16))] + car(0, 500, C_MV)  # checked, closed
    events += car(500, 700, 0) + [(700, "recv", cmd(2, 16))]  # E: a short; open
    events += [(800, "sample", C_MV, NO_DIODE), (800, "tick")]  # C again, now without a diode
    res = run(vm, *events)
    assert res["trace"][len(car(0, 500, C_MV))]["contactor"]  # the first check passed
    assert not res["trace"][-1]["contactor"] and not res["trace"][-2]["contactor"]


def switching_follower(vm):
    vm.call("follower_new", uid=UID.hex(), key=KEY.hex(), f_epoch=F_EPOCH, code="", now=0, can_switch=True)


def cmd_phases(seq, current_a, phases):
    return wire.command(KEY, UID, 3, seq, F_EPOCH, int(current_a * 10), 60, phases).hex()


def charging(t0, t1, high=C_MV, step=100, drawing=True, relay=None):
    # A car that draws what is offered until the pilot stops offering (it stops within 2 s).
    out = []
    for t in range(t0, t1, step):
        out += [(t, "sample", high, DIODE), (t, "measure", *([10000] * 3 if drawing else [0] * 3)), (t, "tick")]
    return out


def test_a_switch_to_one_phase_stops_the_car_opens_moves_the_relay_and_waits(vm):
    switching_follower(vm)
    events = [(0, "recv", cmd_phases(1, 10, 3))] + charging(0, 2000)
    events += [(2000, "recv", cmd_phases(2, 10, 1))] + charging(2000, 3500)  # the car still draws
    events += charging(3500, 70000, drawing=False)  # it stopped 1.5 s after the pilot did
    events += [(t, "recv", cmd_phases(t, 10, 1)) for t in range(3000, 70000, 2000)]  # the leader insists
    events.sort(key=lambda e: (e[0], e[1] != "recv"))
    res = run(vm, *events)
    at = {e[0]: t for e, t in zip(events, res["trace"]) if e[1] == "tick"}
    assert at[1900]["contactor"] and at[1900]["offered"] == 10000 and not at[1900]["one_phase"]
    # At once: nothing offered (100 % duty); the contactor stays closed while the car draws.
    assert at[2000]["duty"] == 10000 and at[2000]["contactor"] and not at[2000]["one_phase"]
    assert at[3400]["contactor"] and not at[3400]["one_phase"]
    # The car stopped: the contactor opens, and half a second later the relay moves.
    assert not at[3500]["contactor"] and not at[3500]["one_phase"]
    assert at[3900]["switching"] and not at[3900]["one_phase"] and at[4000]["one_phase"]
    # Nothing offered for the switch pause; then offered again, and the contactor closes once
    # the car asks on the oscillating pilot.
    assert at[63900]["offered"] == 0 and not at[63900]["contactor"]
    assert at[64000]["offered"] == 10000 and at[64100]["contactor"] and at[64100]["one_phase"]
    assert at[69900]["switching"] == 0


def test_a_car_that_keeps_drawing_is_opened_after_6_s_before_the_relay_moves(vm):
    switching_follower(vm)
    events = [(0, "recv", cmd_phases(1, 16, 3))] + charging(0, 1000)
    events += [(1000, "recv", cmd_phases(2, 16, 1))] + charging(1000, 8000)
    res = run(vm, *events)
    at = {e[0]: t for e, t in zip(events, res["trace"]) if e[1] == "tick"}
    assert at[6900]["contactor"] and not at[6900]["one_phase"]
    assert not at[7000]["contactor"] and not at[7000]["one_phase"] and at[7500]["one_phase"]


def test_a_board_without_a_meter_keeps_the_contactor_closed_the_whole_stop_time(vm):
    # It cannot see the car stop: the EV's 5 s and one more, then open, then the relay.
    switching_follower(vm)
    events = [(0, "recv", cmd_phases(1, 16, 3))] + car(0, 1000, C_MV, step=100)
    events += [(1000, "recv", cmd_phases(2, 16, 1))] + car(1000, 8000, C_MV, step=100)
    res = run(vm, *events)
    at = {e[0]: t for e, t in zip(events, res["trace"]) if e[1] == "tick"}
    assert at[1000]["duty"] == 10000 and at[6900]["contactor"]
    assert not at[7000]["contactor"] and not at[7000]["one_phase"] and at[7500]["one_phase"]


def test_before_the_car_has_charged_the_relay_moves_without_a_pause(vm):
    switching_follower(vm)
    events = [(0, "recv", cmd_phases(1, 10, 1))] + charging(0, 6000, drawing=False)
    res = run(vm, *events)
    at = {e[0]: t for e, t in zip(events, res["trace"]) if e[1] == "tick"}
    assert not at[400]["one_phase"] and at[500]["one_phase"]
    assert at[600]["offered"] == 10000 and at[700]["contactor"]


def test_a_follower_without_the_second_contactor_never_moves_its_relay(vm):
    new_follower(vm)
    events = [(0, "recv", cmd_phases(1, 10, 1))] + charging(0, 3000)
    res = run(vm, *events)
    assert not any(t["one_phase"] or t["switching"] for t in res["trace"])
    assert res["end"]["offered"] == 10000


def test_a_new_car_waits_for_a_command_that_counts_every_phase(vm):
    # The leader counted this 3-phase charger on L1 only (its car drew on one phase). That car
    # leaves and another arrives: nothing for it until a COMMAND counts every phase.
    new_follower(vm)
    events = [(0, "recv", cmd(1, 16, flags=UNCOUNTED_L2_L3))] + car(0, 1000, C_MV) + car(1000, 1500, A_MV) + \
        car(1500, 3000, C_MV) + [(3000, "recv", cmd(2, 16, flags=UNCOUNTED_L2_L3))] + car(3000, 4000, C_MV) + \
        [(4000, "recv", cmd(3, 16))] + car(4000, 6000, C_MV)
    res = run(vm, *events)
    at = dict(zip([e[0] for e in events], res["trace"]))
    assert at[980]["offered"] == 16000  # the first car
    assert max(t["offered"] for e, t in zip(events, res["trace"]) if 1500 <= e[0] < 4000) == 0
    assert res["end"]["offered"] == 16000 and res["end"]["contactor"]  # counted: it charges


def test_a_new_car_on_a_charger_counted_on_every_phase_charges_at_once(vm):
    new_follower(vm)
    events = [(0, "recv", cmd(1, 16))] + car(0, 1000, C_MV) + car(1000, 1500, A_MV) + car(1500, 2500, C_MV)
    res = run(vm, *events)
    assert res["end"]["offered"] == 16000 and res["end"]["contactor"]


def test_a_new_car_waiting_for_its_count_takes_the_fallback_once_the_leader_is_gone(vm):
    new_follower(vm)
    events = [(0, "recv", cmd(1, 16, 8, flags=UNCOUNTED_L2_L3))] + car(0, 1000, C_MV) + car(1000, 1500, A_MV) + \
        car(1500, 18_000, C_MV, step=100)
    res = run(vm, *events)
    ticks = {e[0]: t for e, t in zip(events, res["trace"]) if e[1] == "tick"}
    assert res["end"]["at_fallback"] and res["end"]["offered"] == 8000  # counted on every phase
    # The watchdog fired at 10 s: the rise to the fallback waits 7 s (a leader that still hears
    # it has that long to make room), and its reports say at once what it may offer.
    assert ticks[10_000]["at_fallback"] and ticks[16_900]["offered"] == 0 and ticks[17_000]["offered"] == 8000
    said = [wire.read_state(bytes.fromhex(t["sent"]), KEY)["applied_da"] for u, t in ticks.items()
            if 10_000 <= u < 17_000 and t["sent"]]
    assert said and all(a == 80 for a in said)


def test_a_new_leaders_command_waits_out_the_fallbacks_7_s_too(vm):
    # The others fell back when this one did and their cars take 5 s to come down: a new
    # leader adopting what each reports (this one: its fallback) must not start the new car now.
    new_follower(vm)
    events = [(0, "recv", cmd(1, 16, 8, flags=UNCOUNTED_L2_L3))] + car(0, 1000, C_MV) + car(1000, 1500, A_MV) + \
        car(1500, 12_000, C_MV, step=100) + [(12_000, "recv", cmd(2, 8, 8))] + car(12_000, 18_000, C_MV, step=100)
    ticks = {e[0]: t for e, t in zip(events, run(vm, *events)["trace"]) if e[1] == "tick"}
    assert not ticks[12_000]["at_fallback"] and ticks[16_900]["offered"] == 0 and ticks[17_000]["offered"] == 8000



def test_a_new_car_after_a_pause_does_not_wait_out_the_last_cars_pause(vm):
    new_follower(vm)
    events = [(0, "recv", cmd(1, 16))] + car(0, 1000, C_MV) + [(1000, "recv", cmd(2, 0, 0))] + \
        car(1000, 2000, C_MV) + car(2000, 2500, A_MV) + [(6000, "recv", cmd(3, 16))] + car(6000, 8000, C_MV)
    assert run(vm, *events)["end"]["offered"] == 16000  # not 60 s after the pause


def test_the_identify_flag_blinks_the_led_for_10_s(vm):
    new_follower(vm)
    res = run(vm, (0, "recv", cmd(1, 16, flags=1)), (9_000, "tick"), (10_500, "tick"))
    assert [t["identifying"] for t in res["trace"]] == [True, True, False]


def test_the_report_sequence_rolls_into_a_new_epoch_before_2_30(vm):
    vm.call("follower_new", uid=UID.hex(), key=KEY.hex(), f_epoch=F_EPOCH, seq=2**30 - 2)
    res = run(vm, *[(t, "tick") for t in range(0, 4000, 1000)])
    states = [wire.read_state(bytes.fromhex(t["sent"]), KEY) for t in res["trace"] if t["sent"]]
    seen = [(s["f_epoch"], s["seq"]) for s in states]
    assert seen == sorted(seen) and len(set(seen)) == len(seen) and max(q for _, q in seen) < 2**30
    assert seen[-1][0] == F_EPOCH + 1 and res["end"]["epoch_event"]  # the shell saves it


def test_a_small_fall_is_reported_at_once_a_rise_only_from_1_a(vm):
    # The leader takes the cars' reported draws out of the meter's reading: a fall it has not
    # been told of reads as room, so one of 0.5 A (a car's step) goes out at once; a rise of
    # the same size waits for the next report (it reads as other load: the safe side).
    new_follower(vm)
    events = [(0, "recv", cmd(1, 16))] + car(0, 2000, C_MV, step=100)
    events += [(2000, "measure", 16000, 16000, 16000), (2000, "tick"), (2050, "tick"),
               (2100, "measure", 15500, 15500, 15500), (2100, "tick"),
               (2200, "measure", 16000, 16000, 16000), (2200, "tick"), (2300, "tick")]
    res = run(vm, *events)
    sent = {e[0]: t["sent"] for e, t in zip(events, res["trace"]) if e[1] == "tick"}
    assert sent[2100] and wire.read_state(bytes.fromhex(sent[2100]), KEY)["meas_ca"] == (1550,) * 3
    assert not sent[2200] and not sent[2300]
