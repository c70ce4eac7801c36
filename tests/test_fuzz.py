"""Random and mutated datagrams into a follower core and a leader core: nothing escapes,
every one is counted as rejected, none changes a current."""
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wire
from test_leader import F_EPOCHS, KEYS, UIDS, Site, site
from test_protocol import F_EPOCH, KEY, UID, new_follower, run

BATCH = 1000
BATCHES = 10  # per core: 10,000 datagrams each, 20,000 in all


def mutate(rnd, seed):
    d = bytearray(seed)
    kind = rnd.randrange(7)
    if kind == 0:  # flip bits
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(len(d))
            d[i] ^= 1 << rnd.randrange(8)
    elif kind == 1:  # overwrite a byte
        d[rnd.randrange(len(d))] = rnd.randrange(256)
    elif kind == 2:  # truncate
        d = d[:rnd.randrange(len(d))]
    elif kind == 3:  # extend
        d += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 40)))
    elif kind == 4:  # another type or version in the header
        d[2 + rnd.randrange(2)] = rnd.randrange(256)
    elif kind == 5:  # pure noise
        d = bytearray(rnd.randrange(256) for _ in range(rnd.randrange(120)))
    else:  # an exact replay
        pass
    return bytes(d)


def batch(rnd, seeds):
    return [mutate(rnd, rnd.choice(seeds)).hex() for _ in range(BATCH)]


@settings(max_examples=BATCHES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_follower_core_survives_garbage(vm, seed):
    rnd = random.Random(seed)
    new_follower(vm)
    seeds = [wire.command(KEY, UID, 3, s, F_EPOCH, 160, 60) for s in range(1, 6)]
    seeds += [wire.pair(b"", UID, b"n" * 8, 3, 1, "wb", KEY), wire.hello(UID),
              wire.state(KEY, UID, F_EPOCH, 1)]
    run(vm, *[(0, "recv", s.hex()) for s in seeds[:5]], trace=False)
    res = vm.call("fuzz", role="f", datagrams=batch(rnd, seeds), now=1000)
    before, after = res["before"], res["after"]
    assert res["accepted"] == 0
    assert sum(after["rejected"]) - sum(before["rejected"]) == BATCH
    for field in ("target", "fallback", "offered", "duty", "contactor"):
        assert before[field] == after[field], field


@settings(max_examples=BATCHES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_leader_core_survives_garbage(vm, seed):
    rnd = random.Random(seed)
    s = Site(vm, site(limit=40))
    first = [s.report(i, 0, applied=16000, meas=16000) for i in range(2)]
    s.run(*first, (0, "tick"))
    seeds = [bytes.fromhex(e[2]()) for e in first]  # made as they went out
    seeds += [wire.state(KEYS[i], UIDS[i], F_EPOCHS[i], 1) for i in range(2)]
    seeds += [wire.command(KEYS[0], UIDS[0], 1, 9, F_EPOCHS[0], 320, 60), wire.hello(UIDS[2])]
    res = vm.call("fuzz", role="L", datagrams=batch(rnd, seeds), now=500)
    before, after = res["before"], res["after"]
    assert res["accepted"] == 0
    counted = sum(after["rejected"]) - sum(before["rejected"]) + after["hellos"] - before["hellos"]
    assert counted == BATCH  # a HELLO is only listed, everything else is rejected
    assert after["n_accepted"] == before["n_accepted"]
    for field in ("sent", "permitted", "sent_fb", "status"):
        assert before[field] == after[field], field
