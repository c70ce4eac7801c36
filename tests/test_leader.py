"""The leader core: adoption, make-before-break, silent followers and meters."""
import wire

KEYS = [bytes([i + 1]) * 32 for i in range(3)]
UIDS = [bytes([0x24, 0, 0, 0, 0, i + 1]) for i in range(3)]
F_EPOCHS = [11, 12, 13]


def site(limit=32, meter=False, reserve=None):
    g = {"id": "main", "limit_a": limit}
    if meter:
        g["meter"] = "grid"
    if reserve is not None:
        g["reserve_a"] = reserve
    return {"version": 1, "groups": [g], "meters": [{"id": "grid", "source": "modbus"}] if meter else [],
            "chargers": [{"id": "wb%d" % i, "group": "main", "max_a": 32} for i in range(2)]}


class Site:
    """A leader core in the VM, and two followers played from here with tests/wire.py."""

    def __init__(self, vm, cfg, l_epoch=1, seq=0):
        self.vm = vm
        self.seq = [0, 0]
        self.echo = [(l_epoch, 0)] * 2  # the last COMMAND each follower took: its reports echo it
        vm.call("leader_new", site=cfg, l_epoch=l_epoch, seq=seq,
                followers=[[i, UIDS[i].hex(), KEYS[i].hex()] for i in range(2)])

    def report(self, i, t, pilot=b"C", applied=0, meas=0, fallback=0, phases_meas=None, echo=None, flags=0):
        """A STATE from follower i. It echoes the last COMMAND sent to it before it goes out
        (the follower took it: no loss here), or `echo`, (epoch, seq): a report made earlier."""
        self.seq[i] += 1
        seq = self.seq[i]
        m = phases_meas if phases_meas is not None else (meas,) * 3
        made = []

        def datagram():
            if not made:
                e = self.echo[i] if echo is None else echo
                made.append(wire.state(KEYS[i], UIDS[i], F_EPOCHS[i], seq, l_epoch=e[0], pilot=pilot,
                                       applied_da=applied // 100, fallback_da=fallback // 100,
                                       meas_ca=tuple(x // 10 for x in m), l_seq=e[1], flags=flags).hex())
            return made[0]
        return (t, "recv", datagram)

    def run(self, *events):
        # Up to each tick in one call, so that a report after a tick echoes what it sent.
        res, trace, seg = None, [], []
        for n, ev in enumerate(events):
            seg.append([e() if callable(e) else e for e in ev])
            if ev[1] == "tick" or n == len(events) - 1:
                res = self.vm.call("leader_run", events=seg)
                trace += res["trace"]
                seg = []
                tr = trace[-1]
                if ev[1] == "tick":
                    tr["commands"] = {c: wire.read_command(bytes.fromhex(h), KEYS[c]) for c, h in tr["sent"]}
                    for c, cmd in tr["commands"].items():
                        self.echo[c] = max(self.echo[c], (cmd["epoch"], cmd["seq"]))
        res["trace"] = trace
        return res


def current(tr, c):
    return tr["commands"][c]["current_da"] * 100


def test_a_restarted_leader_adopts_what_followers_do(vm):
    s = Site(vm, site(limit=40), l_epoch=2)
    res = s.run(s.report(0, 0, applied=20000, meas=19800), s.report(1, 0, applied=20000, meas=19900),
                (0, "tick"))
    tick = res["trace"][-1]
    assert current(tick, 0) == 20000 and current(tick, 1) == 20000  # no pause, no ramp from 0
    assert tick["commands"][0]["f_epoch"] == F_EPOCHS[0] and tick["commands"][0]["epoch"] == 2


def adopted(s, t=6000, **kw):
    """Both followers heard from 0 s and the EV's 5 s of adoption run out."""
    events = []
    for u in range(0, t + 1, 1000):
        events += [s.report(0, u, **kw), s.report(1, u, pilot=b"B"), (u, "tick")]
    return s.run(*events)


def test_an_increase_waits_5_s_after_the_decrease_was_taken_whatever_the_car_draws(vm):
    s = Site(vm, site(limit=32))
    # wb0 charges alone at 32 A; wb1's car arrives.
    adopted(s, applied=32000, meas=32000, pilot=b"C")
    res = s.run(s.report(0, 6500, applied=32000, meas=32000), s.report(1, 6500, pilot=b"C"), (7000, "tick"))
    tick = res["trace"][-1]
    # The share is 16 A each: wb0's decrease goes out at once, wb1 is not yet given anything.
    assert current(tick, 0) == 16000 and current(tick, 1) == 0
    assert tick["permitted"][0] == 32000
    # wb0's follower takes 16 A at 7.5 s, and its car follows at once: it could still draw
    # 32 A until 12.5 s (a low reading proves nothing: an asleep car wakes), so nothing yet.
    res = s.run(s.report(0, 7500, applied=16000, meas=16000), s.report(1, 7500, pilot=b"C"), (8000, "tick"))
    assert current(res["trace"][-1], 1) == 0
    events = []
    for t in range(9000, 14000, 1000):
        events += [s.report(0, t, applied=16000, meas=16000), s.report(1, t, pilot=b"C"), (t, "tick")]
    res = s.run(*events)
    given = {ev[0]: current(tr, 1) for ev, tr in zip(events, res["trace"]) if ev[1] == "tick"}
    assert given[12000] == 0 and given[13000] == 16000  # 7.5 s + 5 s


def test_without_a_measurement_the_ev_gets_5_s_to_follow(vm):
    s = Site(vm, site(limit=32))
    s.run(s.report(0, 0, applied=32000, meas=32000), s.report(1, 0, pilot=b"B"), (0, "tick"),
          s.report(1, 1000, pilot=b"B"), (1000, "tick"))
    # The follower reports the new 16 A applied but its meter does not show the car yet.
    events = [s.report(0, 1200, applied=16000, meas=32000)]
    for t in range(2000, 8000, 1000):
        events += [s.report(0, t, applied=16000, meas=32000), s.report(1, t, pilot=b"B"), (t, "tick")]
    res = s.run(*events)
    given = {ev[0]: current(tr, 1) for ev, tr in zip(events, res["trace"]) if ev[1] == "tick"}
    assert given[6000] == 0 and given[7000] == 16000  # 1.2 s + 5 s


def test_a_silent_followers_share_stays_reserved_until_it_must_have_fallen_back(vm):
    # Metered, with a 20 A worst case of other load: fallbacks are 6 A each, shares 16 A.
    s = Site(vm, site(limit=32, meter=True, reserve=20))
    first = s.run((0, "meter", 0, 32000, 32000, 32000), s.report(0, 0, applied=16000, meas=16000, fallback=6000),
                  s.report(1, 0, applied=16000, meas=16000, fallback=6000), (0, "tick"))["trace"][-1]
    assert first["sent_fb"] == [6000, 6000]
    by_t, wb0 = {}, 16000
    for t in range(1000, 21000, 1000):  # wb1 goes silent after t=0, and falls back at 10 s
        wb1 = 16000 if t < 10000 else 6000
        tick = s.run((t, "meter", 0, wb0 + wb1, wb0 + wb1, wb0 + wb1),
                     s.report(0, t, applied=wb0, meas=wb0, fallback=min(wb0, 6000)), (t, "tick"))["trace"][-1]
        by_t[t] = tick
        if 0 in tick["commands"]:
            wb0 = current(tick, 0)  # wb0's car follows at once
    # Silent, wb1 keeps its 16 A on the fuse. What it draws now is not credited back from the
    # meter (its car may have stopped, and may start again up to 16 A): the meter's 32 A less
    # wb0's 16 A is other load, and nothing is left for wb0. Safe, at that price.
    assert by_t[9000]["held"][1] == 16000 and current(by_t[9000], 0) == 0
    # Kept, though the meter shows it fell back: COMMANDs went to it until it was silent
    # (3 s), and each restarted its 10 s watchdog; then the EV's 5 s and 1 s for the network.
    last_cmd = max([0] + [t for t, tr in by_t.items() if 1 in tr["commands"]])
    assert last_cmd == 2000
    assert by_t[17000]["held"][1] == 16000
    # 16 s after the last COMMAND it must be at its fallback (6 A), pinned; its 6 A draw stays
    # other load: 32 - 6 - 6 = 20 A for wb0.
    assert by_t[18000]["held"][1] == 6000
    assert max(current(by_t[t], 0) for t in range(18000, 21000, 1000)) == 20000


def test_a_silent_meter_counts_its_reserve_after_5_s(vm):
    s = Site(vm, site(limit=40, meter=True, reserve=20))
    events = []
    for t in range(0, 12000, 1000):
        if t <= 2000:
            events.append((t, "meter", 0, 10000, 10000, 10000))
        events += [s.report(0, t, applied=0), s.report(1, t, applied=0), (t, "tick")]
    res = s.run(*events)
    out = {ev[0]: tr["out"] for ev, tr in zip(events, res["trace"]) if ev[1] == "tick"}
    assert out[2000] == [15000, 15000]  # 40 A less 10 A of other load
    assert out[6000] == [15000, 15000] and out[7000] == [10000, 10000]  # reserve 20 A from 5 s on


def test_a_meter_step_is_answered_at_once(vm):
    s = Site(vm, site(limit=40, meter=True))
    events = [(0, "meter", 0, 0, 0, 0), s.report(0, 0), s.report(1, 0), (0, "tick"),
              (300, "meter", 0, 30000, 30000, 30000), (300, "tick")]
    res = s.run(*events)
    assert res["trace"][3]["out"] == [20000, 20000]
    assert sorted(res["trace"][5]["out"]) == [0, 10000]  # 10 A left: one car, the other paused
    assert res["trace"][5]["sent"]  # commands went out at 300 ms, not at the next period


def test_hello_is_listed_but_carries_no_authority(vm):
    s = Site(vm, site())
    res = s.run((0, "recv", wire.hello(bytes.fromhex("aabbccddeeff")).hex()))
    assert res["trace"][0]["accepted"] is False
    assert res["end"]["discovered"] == ["aabbccddeeff"] and res["end"]["n_accepted"] == 0
    assert res["end"]["claims"] == [""]  # a 16-byte HELLO claims no charger


def test_a_hello_lists_the_charger_a_unit_claims_and_a_bad_claim_is_dropped(vm):
    s = Site(vm, site())
    uids = [bytes([0xAA, 0, 0, 0, 0, i]) for i in range(4)]
    res = s.run((0, "recv", wire.hello(uids[0], flags=2, claim="carport-west-12").hex()),
                (0, "recv", wire.hello(uids[1], claim="").hex()),
                (0, "recv", (wire.hello(uids[2], flags=2, claim="x" * 24)[:16] + bytes([25]) + b"x" * 24).hex()),
                (0, "recv", wire.hello(uids[3], flags=2, claim=b"\xff\xfe").hex()))
    end = res["end"]
    assert end["discovered"] == [uids[0].hex(), uids[1].hex()]
    assert end["claims"] == ["carport-west-12", ""]
    assert end["rejected"][8] == 2  # field: a claim longer than 24 bytes, one not UTF-8


def test_a_report_of_more_than_counted_is_counted(vm):
    # A new leader adopts whatever report it hears first, a replayed old one included. When
    # the follower then says it holds more, that is what counts on the fuse.
    s = Site(vm, site(limit=32), l_epoch=2)
    events = [s.report(0, 0, applied=0, meas=0), s.report(1, 0, applied=16000, meas=16000), (0, "tick")]
    events += [s.report(0, 500, applied=32000, meas=32000)]
    for t in range(1000, 9000, 1000):
        events += [s.report(0, t, applied=32000, meas=32000), s.report(1, t, applied=16000, meas=16000),
                   (t, "tick")]
    res = s.run(*events)
    ticks = [(ev[0], tr) for ev, tr in zip(events, res["trace"]) if ev[1] == "tick"]
    # Adopted, each may draw its maximum for the EV's 5 s: nobody is raised on the strength of
    # the replayed 0 A (the replay can cost wb0 its current meanwhile: a denial of service).
    assert ticks[0][1]["permitted"] == [32000, 32000] and current(ticks[0][1], 1) == 16000
    for t, tick in ticks:
        assert tick["permitted"][0] >= 32000 or t >= 5000  # what it says it holds counts
        assert current(tick, 1) <= 16000  # and nobody is raised beside it
        assert current(tick, 0) <= 16000  # told to come down to its share


def test_the_command_sequence_rolls_into_a_new_epoch_before_2_30(vm):
    s = Site(vm, site(limit=32), l_epoch=5, seq=2**30 - 2)
    res = s.run(s.report(0, 0), s.report(1, 0), (0, "tick"), (1000, "tick"))
    cmds = [c for tr in res["trace"] if tr.get("commands") for c in tr["commands"].values()]
    seen = [(c["epoch"], c["seq"]) for c in cmds]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # always newer
    assert max(seq for _, seq in seen) < 2**30
    assert seen[-1][0] == 6  # a new epoch once the numbers ran out


def test_pairing_a_known_unit_again_with_its_key_keeps_replays_out(vm):
    # A HELLO carries no authority: the leader answering one for a unit it knows must not
    # forget which of that unit's reports it has already taken.
    s = Site(vm, site())
    old = s.report(0, 100)
    newer = s.report(0, 200)
    res = s.run(old, newer, (300, "pair", 0, UIDS[0].hex(), KEYS[0].hex()), (400, "recv", old[2]))
    assert [tr.get("accepted") for tr in res["trace"]] == [True, True, None, False]
    assert res["end"]["rejected"][6] == 1  # counted as a replay


def test_a_unit_that_measures_nothing_keeps_its_share_after_the_start_period(vm):
    # Its STATE says it measures nothing (UNMEASURED): demand detection has nothing to go on, so its car is not
    # held at the minimum as if it drew nothing; it keeps half of the 40 A as the other does.
    s = Site(vm, site(limit=40))
    events = []
    for t in range(0, 80000, 1000):
        events += [s.report(0, t, applied=20000, flags=32), s.report(1, t, applied=20000, meas=20000), (t, "tick")]
    res = s.run(*events)
    ticks = [tr for tr in res["trace"] if "commands" in tr and tr["commands"]]
    assert [current(tr, 0) for tr in ticks[-20:]] == [20000] * 20  # past the 60 s start period
    assert current(ticks[-1], 1) == 20000


def test_a_car_that_measures_nothing_is_credited_no_draw_on_the_meter(vm):
    # wb0 says it measures nothing (UNMEASURED) and its car draws nothing now (asleep); the meter shows wb1's
    # 20 A alone. Credited its offer, wb0's gap would look like room and wb1 would be raised
    # to 32 A: 52 A on a 40 A fuse once wb0's car wakes. Credited nothing, wb1 stays at 20 A.
    s = Site(vm, site(limit=40, meter=True))
    events = []
    for t in range(0, 20000, 1000):
        events += [(t, "meter", 0, 20000, 20000, 20000), s.report(0, t, applied=20000, flags=32),
                   s.report(1, t, applied=20000, meas=20000), (t, "tick")]
    res = s.run(*events)
    ticks = [tr for tr in res["trace"] if "commands" in tr and tr["commands"]]
    assert max(current(tr, 1) for tr in ticks) <= 20000 and current(ticks[-1], 0) == 20000


def test_a_silent_units_link_age_grows_past_the_silence(vm):
    # The page's link age: wb0 last reported at 2 s; at 20 s it was heard 18 s ago, not "3 s"
    # (its time is aged for the ticks' wrap, but only after a day).
    s = Site(vm, site(limit=40))
    events = []
    for t in range(0, 21000, 1000):
        if t <= 2000:
            events.append(s.report(0, t, applied=6000, meas=6000))
        events += [s.report(1, t, applied=6000, meas=6000), (t, "tick")]
    res = s.run(*events, (20500, "age"))
    assert res["trace"][-1]["heard_ms_ago"][0] == 18500 and res["end"]["status"][0] != 1


def test_an_adopted_follower_counts_at_its_maximum_for_the_evs_5_s(vm):
    # A new leader cannot know what an adopted car was offered in the last 5 s (an earlier
    # leader's current, or one it left for its fallback): nobody is raised beside it till then.
    s = Site(vm, site(limit=32), l_epoch=2)
    events = []
    for t in range(0, 7000, 1000):
        events += [s.report(0, t, applied=6000, meas=6000), s.report(1, t, pilot=b"C"), (t, "tick")]
    res = s.run(*events)
    ticks = {ev[0]: tr for ev, tr in zip(events, res["trace"]) if ev[1] == "tick"}
    assert ticks[0]["permitted"][0] == 32000 and current(ticks[4000], 1) == 0
    assert ticks[6000]["permitted"][0] <= 16000 and current(ticks[6000], 1) == 16000


def narrowed(vm):
    # wb0 (3-phase, L123) charges a 1-phase car for over a minute: counted on L1 only.
    cfg = site(limit=32)
    cfg["chargers"] = [{"id": "wb%d" % i, "group": "main", "max_a": 32, "rotation": "L123"} for i in range(2)]
    s = Site(vm, cfg)
    events = []
    for t in range(0, 66000, 1000):
        events += [s.report(0, t, applied=16000, phases_meas=(16000, 0, 0)), s.report(1, t, pilot=b"A"), (t, "tick")]
    s.run(*events)
    return s


def test_a_narrowed_charger_is_told_which_of_its_phases_are_not_counted(vm):
    s = narrowed(vm)
    tick = s.run((66000, "tick"))["trace"][-1]
    assert tick["commands"][0]["flags"] >> 1 & 7 == 0b110  # its L2 and L3
    # The car leaves: every phase counts again, and the next COMMAND says so.
    tick = s.run(s.report(0, 66500, pilot=b"A"), (66500, "tick"))["trace"][-1]
    assert tick["commands"][0]["flags"] >> 1 & 7 == 0


def test_a_phase_that_comes_alive_again_is_allocated_at_once(vm):
    s = narrowed(vm)
    s.run((66000, "tick"))  # a period: the next is due at 67 s
    res = s.run(s.report(0, 66300, applied=16000, phases_meas=(16000, 16000, 0)), (66300, "tick"))
    assert res["trace"][-1]["sent"]  # at once, not at the next period
    assert res["trace"][-1]["commands"][0]["flags"] >> 1 & 7 == 0b100  # L2 counted again


def test_a_paired_unit_not_yet_heard_is_reserved_at_its_maximum_even_if_off(vm):
    cfg = site(limit=40)
    cfg["chargers"][1]["mode"] = "off"
    s = Site(vm, cfg)
    events = [s.report(0, t, applied=0) for t in range(0, 4000, 1000)] + [(4000, "tick")]
    res = s.run(*events)
    assert res["end"]["held"][1] == 32000 and res["end"]["out"][0] == 8000


def test_a_small_rise_is_answered_at_once(vm):
    # A rise below the 2 A step still goes out with the reading, not at the next period: the
    # cars' 5 s run from the leader's reaction, and the fuse allows 1 s + 5 s from the rise.
    s = Site(vm, site(limit=40, meter=True, reserve=40))
    events = []
    for t in range(0, 7001, 1000):
        events += [(t, "meter", 0, 30000, 30000, 30000), s.report(0, t, applied=s_a(t), meas=15000),
                   s.report(1, t, applied=s_a(t), meas=15000), (t, "tick")]
    s.run(*events)
    res = s.run((7300, "meter", 0, 31000, 31000, 31000), (7300, "tick"))
    assert res["trace"][-1]["sent"] and current(res["trace"][-1], 0) < 20000


def s_a(t):
    return 15000 if t < 6000 else 20000


def test_a_higher_fallback_waits_until_the_lower_one_is_taken(vm):
    # wb0 alone may fall back to 32 A; wb1's car arrives: both fall back to 16 A. wb1's higher
    # fallback goes out only once wb0 reports that it took its lower one.
    s = Site(vm, site(limit=32))
    events = []
    for t in range(0, 7000, 1000):
        events += [s.report(0, t, applied=32000, meas=32000, fallback=32000 if t else 0), s.report(1, t, pilot=b"A"),
                   (t, "tick")]
    first = s.run(*events)["trace"][-1]
    assert first["sent_fb"][0] == 32000
    events = [s.report(1, 7000, pilot=b"C"), (7000, "tick")]
    for t in range(7200, 15000, 1000):  # wb0 takes 16 A at once, but not its lower fallback
        events += [s.report(0, t, applied=16000, meas=16000, fallback=32000), s.report(1, t),
                   (t + 800, "tick")]
    events += [s.report(0, 15200, applied=16000, meas=16000, fallback=16000), (16000, "tick")]
    res = s.run(*events)
    ticks = [(ev[0], tr) for ev, tr in zip(events, res["trace"]) if ev[1] == "tick"]
    assert ticks[0][1]["commands"][0]["fallback_da"] == 160 and ticks[0][1]["commands"][1]["fallback_da"] == 0
    given = [(t, tr["commands"][1]["current_da"] * 100, tr["commands"][1]["fallback_da"] * 100) for t, tr in ticks
             if 1 in tr["commands"]]
    assert given[-2][1] == 16000 and given[-2][2] == 0, given  # current, but wb0 may hold 32 A as fallback
    assert given[-1][2] == 16000, given  # taken: now wb1's fits


def one_phase_beside_three(limit=32):
    """wb0: a 3-phase charger (L123); wb1: a 1-phase one on site L2 (L231)."""
    return {"version": 1, "groups": [{"id": "main", "limit_a": limit}],
            "chargers": [{"id": "wb0", "group": "main", "max_a": 32, "rotation": "L123"},
                         {"id": "wb1", "group": "main", "max_a": 32, "phases": 1, "rotation": "L231"}]}


UNCOUNTED = 0b1110  # COMMAND flag bits 1-3: the charger's L1-L3 not counted


def test_a_new_car_is_told_its_phases_are_counted_only_once_the_others_have_made_room(vm):
    # wb0's 1-phase car charges on L1 and is narrowed to it after its first minute: wb1 takes
    # all of L2. A new car arrives at wb0 (the follower reports it waiting, at 0 A, with no
    # draw) and wb0 is counted on every phase again. Until wb1's car may no longer draw its old
    # offer on L2, a COMMAND that called wb0 counted there would let the new car draw its offer
    # beside it: the flags say "not counted" until what wb0 is sent fits beside what wb1 may
    # still draw, as a fuse on L2 would count it.
    s = Site(vm, one_phase_beside_three())
    sent, flags, permitted = [0, 0], 0, [0, 0]
    seen = []
    for t in range(0, 110_000, 1000):
        new_car = t >= 90_000
        meas0 = (0, 0, 0) if new_car else (min(sent[0], 16000), 0, 0)
        res = s.run(s.report(0, t, applied=0 if new_car else sent[0], phases_meas=meas0),
                    s.report(1, t, applied=sent[1], meas=sent[1]), (t, "tick"))
        tick = res["trace"][-1]
        for c in (0, 1):
            if c in tick["commands"]:
                sent[c] = current(tick, c)
        flags = tick["commands"][0]["flags"] if 0 in tick["commands"] else flags
        permitted = tick["permitted"]
        if new_car:
            seen.append((t, sent[0], flags & UNCOUNTED, permitted[1]))
            if not flags & UNCOUNTED:
                assert sent[0] + permitted[1] <= 32000, seen  # the new car and wb1 on L2
    assert seen[0][1] > 0 and seen[0][2], seen  # an offer in force, its phases not yet counted
    assert not seen[-1][2] and seen[-1][1] > 0, seen  # counted, and charging, once room was made


def test_a_report_made_before_the_decrease_was_taken_confirms_nothing(vm):
    s = Site(vm, site(limit=32))
    events = []
    for t in range(0, 7000, 1000):  # wb0 charges alone at 32 A
        events += [s.report(0, t, applied=32000, meas=32000), s.report(1, t, pilot=b"A"), (t, "tick")]
    assert current(s.run(*events)["trace"][-1], 0) == 32000
    before = s.echo[0]  # the last COMMAND wb0 took before the decrease
    res = s.run(s.report(0, 6500, applied=32000, meas=32000), s.report(1, 6500, pilot=b"C"), (7000, "tick"))
    assert current(res["trace"][-1], 0) == 16000  # wb1's car came: wb0 lowered to 16 A
    # Reports made before wb0 took that COMMAND show 0 A by chance (a new car there waits at
    # 0 A; the old COMMAND, with 32 A, may still reach it and let it go). They confirm nothing;
    # the first that echoes the decrease, at 9.5 s, starts its 5 s.
    events = []
    for t in range(7500, 16000, 1000):
        old = t < 9000
        events += [s.report(0, t, applied=0 if old else 16000, meas=0 if old else 16000,
                            echo=before if old else None),
                   s.report(1, t, pilot=b"C"), (t + 500, "tick")]
    res = s.run(*events)
    given = [ev[0] for ev, tr in zip(events, res["trace"]) if ev[1] == "tick" and current(tr, 1) > 0]
    assert given and given[0] >= 14500, given  # 9.5 s + the EV's 5 s


def test_a_charger_is_counted_on_fewer_phases_only_once_its_follower_was_told(vm):
    # wb0's 1-phase car settles on L1 after its first minute: the leader means to count wb0
    # there alone, and wb1 (on L2) could then take all of L2. It says so in wb0's COMMANDs
    # first; until a report shows wb0 took one (a new car there would otherwise draw on L2
    # believing itself counted), wb0 stays counted on L2 and wb1 gets nothing of it.
    narrowed_only_once_told(Site(vm, one_phase_beside_three()))


def test_a_switching_charger_too_is_counted_on_fewer_phases_only_once_told(vm):
    # The same with wb0 able to switch 3<->1 (its relay stays on three here): the surplus's
    # count of its phases goes through the same rule.
    cfg = one_phase_beside_three()
    cfg["groups"][0]["meter"] = "grid"
    cfg["meters"] = [{"id": "grid", "source": "modbus"}]
    cfg["chargers"][0].update(mode="min_pv", phase_switching=True)
    narrowed_only_once_told(Site(vm, cfg), metered=True)


def narrowed_only_once_told(s, metered=False):
    sent, told_at, held_back = [0, 0], None, None
    outs = []
    for t in range(0, 90_000, 1000):
        stale = told_at is not None and t < told_at + 5000
        d0 = min(sent[0], 10000)
        # Sun: 20 A exported on L1 and on L3 (enough for three phases: the relay stays).
        events = [(t, "meter", 0, d0 - 20000, sent[1], -20000)] if metered else []
        res = s.run(*events, s.report(0, t, applied=sent[0], phases_meas=(d0, 0, 0),
                                      echo=held_back if stale else None),
                    s.report(1, t, applied=sent[1], meas=sent[1]), (t, "tick"))
        tick = res["trace"][-1]
        for c in (0, 1):
            if c in tick["commands"]:
                sent[c] = current(tick, c)
        if told_at is None and tick["commands"][0]["flags"] & UNCOUNTED:
            told_at = t
            held_back = s.echo[0][0], s.echo[0][1] - 2  # a COMMAND before the one that told it
        outs.append((t, tick["out"][1]))
    assert told_at is not None
    before = [o for t, o in outs if t < told_at]
    while_unconfirmed = [o for t, o in outs if told_at <= t < told_at + 5000]
    after = [o for t, o in outs if t >= told_at + 7000]
    assert max(while_unconfirmed) <= before[-1], outs  # L2 still shared with wb0
    assert max(after) > before[-1], outs  # confirmed: wb1 may have L2


def test_an_increase_never_counts_on_a_draw_not_reported_lately(vm):
    # wb0's reports stop coming at 7 s and its car stops; the meter shows the stop at 8 s.
    # Crediting wb0's last reported 16 A against that reading would show 16 A of room that
    # is not there (if the car had not stopped, the meter would still show it): the room an
    # increase may use counts only draws reported within 1.3 s.
    s = Site(vm, site(limit=32, meter=True, reserve=32))
    events = []
    for t in range(0, 8000, 1000):
        events += [(t, "meter", 0, 32000, 32000, 32000)]
        if t <= 7000:
            events += [s.report(0, t, applied=16000, meas=16000)]
        events += [s.report(1, t, applied=16000, meas=16000), (t, "tick")]
    events += [(8000, "meter", 0, 16000, 16000, 16000), s.report(1, 8000, applied=16000, meas=16000),
               (8500, "tick")]
    tick = s.run(*events)["trace"][-1]
    assert tick["status"][0] == 1  # still online: silent only after 3 s
    assert max(tick["cap_up"]) <= 32000, tick["cap_up"]


def test_an_increase_never_counts_on_a_meter_reading_not_taken_lately(vm):
    # The meter answered last at 7 s (32 A on every phase: 16 A of it other load) and then
    # says nothing; it is declared silent only at 12 s. A load that rose meanwhile is not in
    # that reading: from 1.3 s after it, the room an increase may use counts the group at its
    # reserve (here all of the fuse), not at the old reading.
    s = Site(vm, site(limit=40, meter=True, reserve=40))
    events = []
    for t in range(0, 9000, 1000):
        if t <= 7000:
            events += [(t, "meter", 0, 32000, 32000, 32000)]
        events += [s.report(0, t, applied=16000, meas=16000), s.report(1, t, applied=0, pilot=b"B"),
                   (t + (500 if t == 8000 else 0), "tick")]
    trace = s.run(*events)["trace"]
    ticks = [tr for ev, tr in zip(events, trace) if ev[1] == "tick"]
    assert max(ticks[7]["cap_up"]) == 24000  # fresh: 40 A less 16 A of other load
    assert max(ticks[8]["cap_up"]) <= 0, ticks[8]["cap_up"]  # 1.5 s old: its group at reserve


def test_with_sharing_off_nobody_is_offered_current_nor_a_fallback(vm):
    s = Site(vm, site(limit=40))
    tick = adopted(s, applied=16000, meas=16000, fallback=6000, pilot=b"C")["trace"][-1]
    assert current(tick, 0) > 0 and tick["sent_fb"][0] > 0
    tick = s.run((6500, "share", False), (6500, "tick"))["trace"][-1]
    assert current(tick, 0) == 0 and tick["commands"][0]["fallback_da"] == 0  # at once, as any decrease
    events = []
    for t in range(7000, 14000, 1000):
        events += [s.report(0, t, applied=0, meas=0), s.report(1, t, pilot=b"C"), (t, "tick")]
    res = s.run(*events)
    assert all(current(tr, c) == 0 for tr in res["trace"] if "commands" in tr for c in tr["commands"])
    tick = s.run((14000, "share", True), s.report(0, 14000, applied=0, meas=0), (14000, "tick"))["trace"][-1]
    assert current(tick, 0) > 0


def test_an_unpaired_unit_is_forgotten_only_once_it_holds_nothing_and_its_car_followed(vm):
    s = Site(vm, site(limit=40))
    adopted(s, applied=16000, meas=16000, fallback=6000, pilot=b"C")
    tick = s.run((6500, "stop", 0), (6500, "tick"))["trace"][-1]
    assert current(tick, 0) == 0 and tick["commands"][0]["fallback_da"] == 0 and current(tick, 1) > 0
    assert tick["stopped"] == [False, False]
    # Its follower takes it at 7 s: its car may still draw 16 A until 12 s.
    by_t = {}
    for t in range(7000, 14000, 1000):
        res = s.run(s.report(0, t, applied=0, meas=0 if t > 7000 else 16000), s.report(1, t, pilot=b"B"), (t, "tick"))
        by_t[t] = res["trace"][-1]
    assert not by_t[11000]["stopped"][0] and by_t[13000]["stopped"][0]
    end = s.run((13500, "remove", 0), s.report(0, 13600, applied=0, meas=0), s.report(1, 13600, pilot=b"C"),
                (14000, "tick"))
    assert end["end"]["paired"][0] == 0 and end["trace"][1]["accepted"] is False  # its reports are refused
    # Forgotten, it asks for no share: the other car is not lowered for a charger with no unit.
    assert end["end"]["out"] == [0, 32000] and current(end["trace"][-1], 1) == 32000
