"""The wire format against docs/protocol.md (a second implementation in tests/wire.py)."""
import wire

UID = bytes.fromhex("24a16000beef")
KEY = bytes(range(32))
F_EPOCH = 7


def new_follower(vm, key=KEY, code=b"", now=0):
    return vm.call("follower_new", uid=UID.hex(), key=key.hex() if key else None, f_epoch=F_EPOCH,
                   code=code.hex(), now=now)


def run(vm, *events, trace=True):
    return vm.call("follower_run", events=[list(e) for e in events], trace=trace)


def test_state_reports_match_the_documented_layout(vm):
    new_follower(vm)
    res = run(vm, (0, "sample", 9000, -12000), (0, "measure", 12345, 0, 7), (0, "tick"))
    st = wire.read_state(bytes.fromhex(res["trace"][-1]["sent"]), KEY)  # tag checked by CPython hmac
    assert st["uid"] == UID and st["f_epoch"] == F_EPOCH and st["pilot"] == "B"
    assert st["meas_ca"] == (1234, 0, 0)
    assert st["seq"] == 1


def test_a_unit_that_measures_nothing_says_so(vm):
    # A board without current sensing never measures: its STATE carries the UNMEASURED flag
    # (32) with 0 A, so a leader that knows the flag does not take it for a car drawing nothing,
    # and one that does not reads 0 A as before. Once it measures, the flag goes.
    new_follower(vm)
    res = run(vm, (0, "sample", 6000, -12000), (0, "tick"))
    st = wire.read_state(bytes.fromhex(res["trace"][-1]["sent"]), KEY)
    assert st["flags"] & 32 and st["meas_ca"] == (0, 0, 0), st
    res = run(vm, (100, "measure", 12345, 0, 7), (1100, "tick"))
    st = wire.read_state(bytes.fromhex(res["trace"][-1]["sent"]), KEY)
    assert not st["flags"] & 32 and st["meas_ca"] == (1234, 0, 0), st


def test_a_documented_command_is_obeyed(vm):
    new_follower(vm)
    cmd = wire.command(KEY, UID, epoch=3, seq=1, f_epoch=F_EPOCH, current_da=160, fallback_da=60)
    res = run(vm, (0, "recv", cmd.hex()), (0, "sample", 9000, -12000))
    assert res["trace"][0]["accepted"]
    assert res["end"]["target"] == 16000 and res["end"]["fallback"] == 6000
    assert res["end"]["offered"] == 16000 and res["end"]["duty"] == 2666


def test_newer_versions_trailing_fields_are_ignored(vm):
    new_follower(vm)
    cmd = wire.command(KEY, UID, 3, 1, F_EPOCH, 100, 60, extra=b"\x01\x02\x03", version=2)
    assert run(vm, (0, "recv", cmd.hex()))["end"]["target"] == 10000


def test_an_older_version_is_refused_and_counted(vm):
    new_follower(vm)
    cmd = bytearray(wire.command(KEY, UID, 3, 1, F_EPOCH, 100, 60))
    cmd[2] = 0
    end = run(vm, (0, "recv", bytes(cmd).hex()))["end"]
    assert end["target"] == 0 and end["rejected"][2] == 1  # old_version


def test_forged_altered_truncated_replayed_and_stale_commands_are_dropped(vm):
    new_follower(vm)
    good = wire.command(KEY, UID, 3, 5, F_EPOCH, 160, 60)
    forged = wire.command(bytes(32), UID, 3, 6, F_EPOCH, 320, 320)
    altered = bytearray(wire.command(KEY, UID, 3, 7, F_EPOCH, 160, 60))
    altered[22] = 0xFF  # current raised after signing
    truncated = wire.command(KEY, UID, 3, 8, F_EPOCH, 320, 60)[:30]
    older = wire.command(KEY, UID, 3, 4, F_EPOCH, 320, 60)
    other_boot = wire.command(KEY, UID, 3, 9, F_EPOCH - 1, 320, 60)
    events = [(0, "recv", good.hex())] + [(0, "recv", d.hex()) for d in
                                           (forged, bytes(altered), truncated, good, older, other_boot)]
    res = run(vm, *events)
    assert [t["accepted"] for t in res["trace"]] == [True] + [False] * 6
    assert res["end"]["target"] == 16000
    rej = res["end"]["rejected"]
    assert rej[5] == 2 and rej[0] == 1 and rej[6] == 2 and rej[7] == 1  # auth, short, replay, epoch


def test_pairing_inside_and_outside_the_window(vm):
    code = b"4711"
    new_follower(vm, key=None, code=code)
    p1 = wire.pair(code, UID, b"n" * 8, 3, 2, "carport-2", KEY)
    wrong_code = wire.pair(b"0000", UID, b"m" * 8, 3, 2, "carport-2", bytes(32))
    res = run(vm, (1000, "recv", wrong_code.hex()), (1000, "recv", p1.hex()))
    assert [t["accepted"] for t in res["trace"]] == [False, True]
    assert res["end"]["paired"] and res["end"]["charger_id"] == "carport-2"
    # Paired now with KEY: its COMMANDs work, and a second PAIR needs the button.
    cmd = wire.command(KEY, UID, 3, 1, F_EPOCH, 100, 60)
    late = wire.pair(code, UID, b"o" * 8, 3, 2, "evil", bytes(32))
    res = run(vm, (2000, "recv", cmd.hex()), (400_000, "recv", late.hex()), (400_100, "press"),
              (400_200, "recv", late.hex()))
    assert [t.get("accepted") for t in res["trace"]] == [True, False, None, True]
    assert res["end"]["rejected"][9] == 1  # window


def test_hmac_is_standard_hmac_sha256(vm):
    # The firmware's STATE tag verifies with CPython's hmac: checked inside wire.read_state.
    new_follower(vm, key=bytes([9] * 32))
    res = run(vm, (0, "tick"))
    wire.read_state(bytes.fromhex(res["trace"][0]["sent"]), bytes([9] * 32))


def test_a_paired_unit_no_leader_commands_claims_its_charger_in_a_hello(vm):
    # After its leader is replaced or forgets it, a paired unit is heard only through these:
    # its STATEs are refused by a leader that holds no key for it.
    code = b"4711"
    new_follower(vm, key=None, code=code)
    events = [(t, "tick") for t in range(0, 3000, 100)]
    events += [(3000, "recv", wire.pair(code, UID, b"n" * 8, 3, 2, "carport-2", KEY).hex())]
    events += [(t, "tick") for t in range(3000, 40000, 100)]
    cmd_at = 40000
    for t in range(cmd_at, cmd_at + 30000, 100):
        if t % 1000 == 0:
            events += [(t, "recv", wire.command(KEY, UID, 3, 1 + t // 1000, F_EPOCH, 100, 60).hex())]
        events += [(t, "tick")]
    res = run(vm, *events)
    hellos = [(ev[0], wire.read_hello(bytes.fromhex(tr["sent"]))) for ev, tr in zip(events, res["trace"])
              if tr.get("sent") and bytes.fromhex(tr["sent"])[3] == wire.HELLO]
    unpaired = [h for t, h in hellos if t < 3000]
    assert unpaired and all(h["claim"] == "" and not h["flags"] & 2 for h in unpaired)
    claims = [(t, h) for t, h in hellos if t >= 3000]
    # At its fallback 10 s after boot (no COMMAND ever), the first claim 10 s later (its
    # timers move once a second), then one every 10 s till a leader commands it.
    times = [t for t, _ in claims]
    assert len(times) == 2 and 20000 <= times[0] <= 21000 and times[1] - times[0] == 10000
    assert all(h["claim"] == "carport-2" and h["flags"] & 2 and h["uid"] == UID for _, h in claims)
    assert not [t for t, _ in hellos if t >= cmd_at]  # commanded again: reports only
