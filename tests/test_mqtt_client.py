"""The MQTT client (lib/ampshare/mqtt) in the unix port against a real Mosquitto broker, started
here on loopback ports in 27200-27299: credentials, the last will, QoS 0 and 1 both ways, the
latest-value slots, resending, subscriptions, refusals, oversized and raising input, reconnects
with backoff, keepalive, TLS, and an event loop that is never blocked. The other end is paho-mqtt
and the broker's own log (what the client really sent: flags, sizes, PUBACKs, PINGREQs)."""
import binascii
import fcntl
import json
import os
import queue
import re
import socket
import struct
import sys
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt import publish as paho_publish
from paho.mqtt.enums import CallbackAPIVersion

from vm import ROOT, micropython, mp_env
import test_system

sys.path.insert(0, str(ROOT / "tools"))
from broker import MOSQUITTO, Broker  # noqa: E402,F401  (MOSQUITTO: test_mqtt takes it from here)

KA = 2  # the clients' keepalive here (s): pings every second, a silent broker noticed in 3
IN_MAX = 1024  # lib/ampshare/mqtt/packet.py
from broker import USER, PASSWORD  # noqa: E402
GAP_MS = 500  # the longest the ticker in tests/mp/mqtt_client.py may wait between 100 ms ticks


def wait_for(what, timeout, every=0.05):
    return test_system.wait_for(what, timeout, every)  # polled finer: the broker answers in ms


# ---- the broker -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    if not os.path.exists(MOSQUITTO):
        pytest.fail("mosquitto is missing: apt-get install mosquitto (make setup)")
    # Another run (a parallel worker) takes its ports once this one's broker has them.
    with open(Path(tempfile.gettempdir()) / "ampshare-test-mqtt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        b = Broker(tmp_path_factory.mktemp("mqtt"), test_system.free_ports(27200, 27299, 3))
        b.start()
    yield b
    if b.proc is not None:
        if b.paused:
            b.resume()
        b.stop()


# ---- the client's process, and paho on the other side ------------------------------------

class Mp:
    """tests/mp/mqtt_client.py: a Client in the unix port, driven by JSON lines."""

    def __init__(self, **cfg):
        self.cfg = cfg
        self.proc = subprocess.Popen([micropython(), str(ROOT / "tests" / "mp" / "mqtt_client.py"), json.dumps(cfg)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1, env=mp_env(), cwd=ROOT)
        self.msgs = []
        self.answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._answer() == {"ready": True}

    def _read(self):
        for line in self.proc.stdout:
            obj = json.loads(line)
            if "msg" in obj:
                self.msgs.append(tuple(obj["msg"][:2]))
            else:
                self.answers.put(obj)

    def _answer(self):
        try:
            return self.answers.get(timeout=5)
        except queue.Empty:
            pytest.fail("the client's process did not answer (code %s): %s" % (self.proc.poll(), self.stderr()))

    def call(self, op, **kw):
        kw["op"] = op
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def ok(self, op, **kw):
        ans = self.call(op, **kw)
        assert "ok" in ans, ans
        return ans["ok"]

    def stats(self):
        return self.ok("stats")

    def until(self, pred, timeout=5):
        """Polls the client's stats until pred holds: the last stats (pred's truth asserted)."""
        last = {}

        def check():
            last.update(self.stats())
            return pred(last)
        assert wait_for(check, timeout), last
        return last

    def connected(self, n=1, timeout=5):
        return self.until(lambda s: s["state"] == "connected" and s["connects"] >= n, timeout)

    def stderr(self):
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)


class Sub:
    """A paho subscriber: every message as (topic, payload, qos, retain)."""

    def __init__(self, port, topics, qos=1):
        self.msgs = []
        self.c = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.c.on_message = lambda c, u, m: self.msgs.append((m.topic, m.payload, m.qos, bool(m.retain)))
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        self.c.subscribe([(t, qos) for t in topics])
        assert subscribed.wait(5), "no SUBACK for paho"

    def payloads(self, topic):
        return [m[1] for m in self.msgs if m[0] == topic]

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def send(port, topic, payload, qos=0, retain=False):
    paho_publish.single(topic, payload, qos=qos, retain=retain, hostname="127.0.0.1", port=port,
                        protocol=paho.MQTTv311)


@pytest.fixture
def mq(broker):
    broker.ensure()
    made = []

    def spawn(client_id, **cfg):
        cfg.setdefault("port", broker.port)
        cfg.setdefault("keepalive_s", KA)
        m = Mp(client_id=client_id, **cfg)
        made.append(m)
        return m
    yield spawn
    for m in made:
        m.kill()
    broker.ensure()


def received(broker, cid, what):
    """The broker's log lines for what cid sent."""
    return re.findall(r"Received %s from %s\b(.*)" % (what, re.escape(cid)), broker.log())


# ---- the codec, in the unix port -----------------------------------------------------------

def ref_len(n):
    out = bytearray()
    while True:
        n, b = divmod(n, 128)
        out.append(b | (128 if n else 0))
        if not n:
            return bytes(out)


def ref_str(b):
    return struct.pack(">H", len(b)) + b


def ref_head(topic, size, qos=0, retain=0, dup=0, pid=0):
    rem = 2 + len(topic) + (2 if qos else 0) + size
    return (bytes([0x30 | dup << 3 | qos << 1 | retain]) + ref_len(rem) + ref_str(topic)
            + (struct.pack(">H", pid) if qos else b""))


def ref_connect(cid, ka, user=None, pw=None, wt=None, wp=b"", wr=False, wq=0, clean=True):
    flags = (2 if clean else 0) | (0x80 if user is not None else 0) | (0x40 if pw is not None else 0)
    body = ref_str(cid.encode())
    if wt is not None:
        flags |= 4 | wq << 3 | (0x20 if wr else 0)
        body += ref_str(wt.encode()) + ref_str(wp)
    if user is not None:
        body += ref_str(user.encode())
    if pw is not None:
        body += ref_str(pw.encode())
    var = ref_str(b"MQTT") + bytes([4, flags]) + struct.pack(">H", ka) + body
    return b"\x10" + ref_len(len(var)) + var


def pub(topic, payload, qos=0, pid=0, retain=0, dup=0):
    return ref_head(topic, len(payload), qos, retain, dup, pid) + payload


CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP, MALFORMED, OVERSIZED = 2, 3, 4, 9, 13, -1, -2
GOOD = (b"\x20\x02\x00\x00" + b"\x20\x02\x01\x05" + pub(b"cmd/limit", b"16") + pub(b"a/b", b"x" * 300, 1, 0x1234, 1, 1)
        + b"\x40\x02\x12\x34" + b"\x90\x03\x00\x07\x01" + b"\x90\x03\x00\x08\x80" + b"\xd0\x00"
        + pub(b"t", b"y" * (IN_MAX - 3)))  # a body of IN_MAX exactly
BAD = {
    "a fifth length byte": b"\x30\xff\xff\xff\xff\x01",
    "CONNACK of 3 bytes": b"\x20\x03\x00\x00\x00",
    "CONNACK's reserved bits": b"\x20\x02\x02\x00",
    "PUBACK with flags": b"\x42\x02\x00\x01",
    "PUBACK without an id": b"\x40\x02\x00\x00",
    "PUBLISH at QoS 3": b"\x36\x05\x00\x01t\x00\x01",
    "PUBLISH at QoS 0 with DUP": b"\x38\x04\x00\x01tx",
    "PUBLISH's topic past its end": b"\x30\x03\x00\x05a",
    "PUBLISH with an empty topic": b"\x30\x03\x00\x00x",
    "PUBLISH at QoS 1 with id 0": b"\x32\x05\x00\x01t\x00\x00",
    "PUBLISH to a wildcard": pub(b"cmd/+", b"1"),
    "PINGRESP with a body": b"\xd0\x01\x00",
    "SUBACK's code 3": b"\x90\x03\x00\x01\x03",
    "CONNECT from a broker": ref_connect("x", 60),
    "UNSUBACK": b"\xb0\x02\x00\x01",
}


@pytest.fixture(scope="module")
def codec():
    cases = {
        "publish": [["a/b", 0, 0, False, False, 0], ["a/b", 1, 1, True, True, 0xBEEF]]
        + [["t", rem - 3, 0, False, False, 0] for rem in (127, 128, 16383, 16384, 2097151, 2097152, 268435455)],
        "connect": [["leader-1", 60], ["id", 30, USER, PASSWORD], ["id", 5, USER, None, "st", "offline", True, 1],
                    ["", 0]],
        "decode": {name: binascii.hexlify(data).decode() for name, data in
                   dict(BAD, good=GOOD, oversized=b"\x30" + ref_len(IN_MAX + 1) + b"\x00\x01t",
                        huge=b"\x30" + ref_len(268435455), mid=b"\x30" + ref_len(2097152)).items()},
    }
    proc = subprocess.run([micropython(), str(ROOT / "tests" / "mp" / "mqtt_codec.py")], input=json.dumps(cases),
                          capture_output=True, text=True, env=mp_env(), cwd=ROOT, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return cases, json.loads(proc.stdout)


def test_encoders_write_the_standards_bytes(codec):
    cases, res = codec
    for (t, size, qos, retain, dup, pid), got, n in zip(cases["publish"], res["publish"], res["publish_size"]):
        want = ref_head(t.encode(), size, qos, retain, dup, pid)
        assert binascii.unhexlify(got) == want, (t, size)
        assert n == len(want) + size
    assert [binascii.unhexlify(c) for c in res["connect"]] == [
        ref_connect("leader-1", 60), ref_connect("id", 30, USER, PASSWORD),
        ref_connect("id", 5, USER, None, "st", b"offline", True, 1), ref_connect("", 0)]
    assert [binascii.unhexlify(c) for c in res["small"]] == [
        b"\x40\x02\x12\x34", b"\x82" + ref_len(2 + 2 + 9 + 1) + b"\x00\x07" + ref_str(b"cmd/limit") + b"\x01",
        b"\xc0\x00", b"\xe0\x00"]
    assert all(res["refused"]), res["refused"]
    assert res["small_len"] == 8  # a packet too long for its buffer is refused, the buffer not grown


def test_the_reader_decodes_a_stream_in_any_pieces(codec):
    _, res = codec
    whole, bytewise = res["decode"]["good"]
    assert whole == bytewise  # the same packets fed all at once and one byte at a time
    evs = whole["events"]
    assert [e["event"] for e in evs] == [CONNACK, CONNACK, PUBLISH, PUBLISH, PUBACK, SUBACK, SUBACK, PINGRESP, PUBLISH]
    assert (evs[0]["code"], evs[1]["code"], evs[1]["present"]) == (0, 5, 1)
    p = evs[2]
    assert (binascii.unhexlify(p["topic"]), binascii.unhexlify(p["payload"]), p["qos"], p["pid"]) == (
        b"cmd/limit", b"16", 0, 0)
    p = evs[3]
    assert (binascii.unhexlify(p["topic"]), len(p["payload"]) // 2, p["qos"], p["retain"], p["dup"], p["pid"]) == (
        b"a/b", 300, 1, 1, 1, 0x1234)
    assert evs[4]["pid"] == 0x1234
    assert (evs[5]["pid"], evs[5]["codes"], evs[6]["codes"]) == (7, "01", "80")
    assert evs[8]["size"] == IN_MAX and len(evs[8]["payload"]) // 2 == IN_MAX - 3


@pytest.mark.parametrize("name", BAD)
def test_the_reader_calls_malformed_what_a_broker_may_not_send(codec, name):
    _, res = codec
    for got in res["decode"][name]:
        assert [e["event"] for e in got["events"]] == [MALFORMED], got


def test_oversized_is_reported_when_the_length_is_known(codec):
    _, res = codec
    for name, size in (("oversized", IN_MAX + 1), ("huge", 268435455), ("mid", 2097152)):
        for got in res["decode"][name]:
            assert [(e["event"], e["size"]) for e in got["events"]] == [(OVERSIZED, size)], name
            # It stops at the length's last byte: nothing of the body is read, or needed.
            assert got["stop"] == 1 + len(ref_len(size)), name


def test_publishing_takes_nothing_from_the_heap_and_the_limits_are_named(codec):
    _, res = codec
    assert res["heap_lock"] == "ok"  # publish() into a slot and the encoders, under heap_lock
    assert "SLOTS_MAX" in res["slot_last"] and "one/too/many" in res["slot_last"]
    plus, hash_, pub_plus, qos2 = res["wildcards"]
    assert "'+'" in plus and "wildcard" in plus and "cmd/+/limit" in plus
    assert "'#'" in hash_ and "wildcard" in hash_
    assert "'+'" in pub_plus and qos2
    for level, lo, hi in res["backoff"]:
        assert lo == level - level // 2 and hi == level  # jitter: up to half of the wait, never more


# ---- against the broker -----------------------------------------------------------------

def test_user_and_password_and_a_refused_connack_backs_off(broker, mq):
    t0 = time.monotonic()
    bad = mq("leader-badpw", port=broker.auth_port, user=USER, password="wrong")
    good = mq("leader-auth", port=broker.auth_port, user=USER, password=PASSWORD)
    good.connected()
    s = bad.until(lambda s: s["refused"] >= 1)
    assert s["connects"] == 0 and re.match(r"CONNACK refused: [45] ", s["last_error"]), s
    s = bad.until(lambda s: s["state"] == "backoff")
    # The next attempts wait 0.5-1 s, then 1-2 s, then 2-4 s: in 3.2 s, 2 or 3 attempts; without
    # a backoff, dozens.
    time.sleep(max(0.0, 3.2 - (time.monotonic() - t0)))
    s = bad.stats()
    assert 2 <= s["attempts"] <= 3 and s["refused"] >= s["attempts"] - 1 and s["connects"] == 0, s
    assert s["state"] in ("backoff", "connecting") and s["retry_ms"] >= 500, s
    assert good.stats()["disconnects"] == 0


def test_the_last_will_is_published_retained_when_the_process_dies(broker, mq):
    status = "t/will/status"
    m = mq("leader-will", will=[status, "offline", True])
    sub = Sub(broker.port, [status])
    try:
        m.connected()
        m.ok("pub", topic=status, payload="online", retain=True, qos=1)
        assert wait_for(lambda: sub.payloads(status) == [b"online"], 5), sub.msgs
        m.kill()  # no DISCONNECT: the broker sees the socket close
        assert wait_for(lambda: sub.payloads(status) == [b"online", b"offline"], 5), sub.msgs
    finally:
        sub.close()
    late = Sub(broker.port, [status])  # subscribed after: gets the retained will
    try:
        assert wait_for(lambda: late.msgs, 5)
        assert late.msgs == [(status, b"offline", 0, True)], late.msgs
    finally:
        late.close()


def test_qos0_and_qos1_publishes_reach_a_subscriber(broker, mq):
    sub = Sub(broker.port, ["t/pub/q0", "t/pub/q1"])
    m = mq("leader-pub")
    try:
        m.connected()
        m.ok("pub", topic="t/pub/q0", payload="20.5")
        m.ok("pub", topic="t/pub/q1", payload="charging", qos=1)
        assert wait_for(lambda: len(sub.msgs) == 2, 5), sub.msgs
        assert sorted(sub.msgs) == [("t/pub/q0", b"20.5", 0, False), ("t/pub/q1", b"charging", 1, False)]
        s = m.until(lambda s: s["in_flight"] == 0)  # the QoS 1 PUBACK came back
        assert s["published"] == 2 and s["resent"] == 0
        sent = received(broker, "leader-pub", "PUBLISH")
        assert any("(d0, q1, r0" in line and "'t/pub/q1'" in line for line in sent), sent
        assert any("(d0, q0, r0" in line and "'t/pub/q0'" in line for line in sent), sent
    finally:
        sub.close()


def test_a_broker_away_gets_only_each_topics_latest_value_and_ram_stays_bounded(broker, mq):
    topic = "t/latest/value"
    m = mq("leader-latest")
    m.connected()
    broker.stop()
    m.until(lambda s: s["state"] != "connected")
    # 1000 values of 204 bytes while nothing can be sent: queued, they would take 200 KB.
    heap = m.ok("pubs", topic=topic, n=1000, pad=200, retain=True)
    assert heap["after"] - heap["before"] < 8 * 1024, heap
    broker.start()
    s = m.connected(2, timeout=8)
    assert s["disconnects"] == 1
    m.until(lambda s: s["published"] >= 1)
    time.sleep(0.3)
    sent = [line for line in received(broker, "leader-latest", "PUBLISH") if "'%s'" % topic in line]
    assert len(sent) == 1 and "(204 bytes)" in sent[0], sent
    sub = Sub(broker.port, [topic])
    try:
        assert wait_for(lambda: sub.msgs, 5)
        assert sub.msgs[0][1].startswith(b"1000.") and sub.msgs[0][3], sub.msgs  # the newest, retained
    finally:
        sub.close()


def test_a_broker_that_takes_nothing_makes_the_output_wait_and_partial_writes_go_on(broker, mq):
    # 8 topics of 1 MB each (one object in the client's heap): more than the kernel's buffers
    # take while the broker reads nothing, so writes stop part-way through a frame.
    n, size = 8, 1 << 20
    sub = Sub(broker.port, ["t/big/%d" % k for k in range(n)], qos=0)
    m = mq("leader-stall", keepalive_s=10)  # a pause shorter than the keepalive
    try:
        m.connected()
        broker.pause()
        m.ok("ticks")
        m.ok("big", topic="t/big", n=n, size=size)
        time.sleep(1.0)
        s = m.stats()
        ticks = m.ok("ticks")
        assert s["published"] < n and s["state"] == "connected", s  # waiting, not lost
        assert ticks["gap"] < GAP_MS and ticks["n"] >= 8, ticks
        broker.resume()
        m.until(lambda s: s["published"] == n, timeout=10)
        want = bytes(range(256)) * (size // 256)
        assert wait_for(lambda: len(sub.msgs) == n, 10), len(sub.msgs)
        assert sorted(t for t, *_ in sub.msgs) == sorted("t/big/%d" % k for k in range(n))
        assert all(p == want for _, p, *_ in sub.msgs)  # whole frames, continued where each write stopped
        assert m.stats()["disconnects"] == 0
    finally:
        sub.close()


def test_an_unacknowledged_qos1_publish_is_resent_with_dup_after_a_reconnect(broker, mq):
    topic = "t/resend/cmd-ack"
    m = mq("leader-resend")
    m.connected()
    broker.pause()  # the broker reads nothing more: no PUBACK
    m.ok("pub", topic=topic, payload="ack-42", qos=1)
    m.until(lambda s: s["published"] == 1 and s["in_flight"] == 1)
    broker.stop(kill=True)  # the connection is reset with the PUBLISH unread
    broker.start()
    sub = Sub(broker.port, [topic])
    try:
        s = m.until(lambda s: s["connects"] == 2 and s["in_flight"] == 0, timeout=6)
        assert s["resent"] == 1 and s["published"] == 1, s
        assert wait_for(lambda: sub.payloads(topic) == [b"ack-42"], 5), sub.msgs
        sent = [line for line in received(broker, "leader-resend", "PUBLISH") if "'%s'" % topic in line]
        assert len(sent) == 1 and "(d1, q1," in sent[0], sent
    finally:
        sub.close()


def test_subscriptions_receive_commands_and_qos1_is_acknowledged(broker, mq):
    m = mq("leader-cmd", subs=[["t/cmd/limit", 1], ["t/cmd/mode", 0]])
    m.connected()
    assert wait_for(lambda: len(received(broker, "leader-cmd", "SUBSCRIBE")) == 2, 5)
    send(broker.port, "t/cmd/limit", "16", qos=1)
    send(broker.port, "t/cmd/mode", "pv", qos=0)
    send(broker.port, "t/cmd/other", "x", qos=0)  # not subscribed
    assert wait_for(lambda: len(m.msgs) == 2, 5), m.msgs
    assert sorted(m.msgs) == [("t/cmd/limit", "16"), ("t/cmd/mode", "pv")]
    assert wait_for(lambda: received(broker, "leader-cmd", "PUBACK"), 5), broker.log()[-2000:]
    s = m.stats()
    assert s["received"] == 2 and s["callback_errors"] == 0 and s["malformed"] == 0


def test_a_retained_message_from_before_the_subscription_is_dropped_and_counted(broker, mq):
    # A command or a meter reading a broker kept (retained) is old: delivered because we
    # subscribed, it must not act as if sent now. A live one, retained or not, is taken.
    topic = "t/stale/meter"
    send(broker.port, topic, "[40, 40, 40]", qos=1, retain=True)
    try:
        m = mq("leader-stale", subs=[[topic, 1]])
        m.connected()
        s = m.until(lambda s: s["stale"] == 1)
        assert s["received"] == 1 and m.msgs == [], (s, m.msgs)
        send(broker.port, topic, "[10, 10, 10]", qos=1, retain=True)
        assert wait_for(lambda: m.msgs == [(topic, "[10, 10, 10]")], 5), m.msgs
        assert m.stats()["stale"] == 1
        # A client made with retained=True takes the stored value.
        m2 = mq("leader-takes-retained", subs=[[topic, 0]], retained=True)
        m2.connected()
        assert wait_for(lambda: m2.msgs == [(topic, "[10, 10, 10]")], 5), m2.msgs
        assert m2.stats()["stale"] == 0
    finally:
        send(broker.port, topic, "", retain=True)  # the broker's copy cleared


def test_lazy_slots_send_the_latest_value_made_when_sent_and_keep_nothing(broker, mq):
    sub = Sub(broker.port, ["t/lazy/0", "t/lazy/1", "t/lazy/2"])
    m = mq("leader-lazy")
    try:
        m.connected()
        slots = m.ok("lazy", base="t/lazy", n=3)
        # 300 touches of each in one go (the writer runs after): one value per slot waits, and
        # nothing is kept for it but the key.
        one = m.ok("touch", slots=slots, times=1)  # the request's own objects: the same for 1 or 299
        got = m.ok("touch", slots=slots, times=299)
        assert got["after"] - got["before"] <= one["after"] - one["before"] + 32, (one, got)
        for k in range(3):
            assert wait_for(lambda: sub.payloads("t/lazy/%d" % k)[-1:] == [b"v%d-300" % k], 5), sub.msgs
        made = m.ok("touch", slots=slots, times=0)["made"]
        assert made <= 6 and len(sub.msgs) == made, (made, sub.msgs)  # a document made per send only
        m.ok("touch", slots=slots[:1], times=1)
        assert wait_for(lambda: sub.payloads("t/lazy/0")[-2:] == [b"v0-300", b"v0-301"], 5), sub.msgs
        # After a reconnect every lazy slot goes out again, made anew.
        broker.stop()
        broker.start()
        m.connected(2, timeout=8)
        assert wait_for(lambda: sub.payloads("t/lazy/2")[-1:] == [b"v2-300"] and len(sub.payloads("t/lazy/2")) >= 1, 5)
    finally:
        sub.close()


def test_a_wildcard_subscription_is_refused_by_name(broker, mq):
    m = mq("leader-wild")
    m.connected()
    for topic, wildcard in (("t/cmd/+/limit", "'+'"), ("t/#", "'#'"), ("#", "'#'")):
        ans = m.call("sub", topic=topic, qos=1)
        assert "error" in ans and wildcard in ans["error"] and "wildcard" in ans["error"] and topic in ans["error"], ans
    assert m.ok("sub", topic="t/cmd/exact", qos=1)
    assert wait_for(lambda: received(broker, "leader-wild", "SUBSCRIBE"), 5)
    time.sleep(0.2)
    subscribed = re.findall(r"\n\d+: leader-wild \d (\S+)", broker.log())
    assert subscribed == ["t/cmd/exact"], subscribed


def test_an_oversized_publish_is_dropped_the_connection_reset_and_the_client_recovers(broker, mq):
    topic = "t/big/cmd"
    m = mq("leader-big", subs=[[topic, 0]])
    m.connected()
    assert wait_for(lambda: len(received(broker, "leader-big", "SUBSCRIBE")) == 1, 5)
    exactly = IN_MAX - 2 - len(topic)  # a remaining length of IN_MAX exactly: taken
    send(broker.port, topic, "a" * exactly)
    assert wait_for(lambda: len(m.msgs) == 1, 5) and len(m.msgs[0][1]) == exactly
    send(broker.port, topic, "b" * (exactly + 1))
    s = m.until(lambda s: s["dropped_oversized"] == 1 and s["disconnects"] == 1)
    assert "IN_MAX" in s["last_error"] and s["received"] == 1, s
    m.connected(2, timeout=8)
    # Subscribed again on the new connection, and working.
    assert wait_for(lambda: len(received(broker, "leader-big", "SUBSCRIBE")) == 2, 5)
    send(broker.port, topic, "small")
    assert wait_for(lambda: m.msgs[-1:] == [(topic, "small")], 5), m.msgs
    assert m.stats()["malformed"] == 0


def test_a_callback_that_raises_is_counted_and_the_client_goes_on(broker, mq):
    topic = "t/raise/cmd"
    m = mq("leader-raise", subs=[[topic, 1]])
    m.connected()
    assert wait_for(lambda: received(broker, "leader-raise", "SUBSCRIBE"), 5)
    send(broker.port, topic, "boom", qos=1)  # tests/mp/mqtt_client.py's callback raises for it
    send(broker.port, topic, "after", qos=1)
    assert wait_for(lambda: [p for _, p in m.msgs] == ["boom", "after"], 5), m.msgs
    s = m.until(lambda s: s["callback_errors"] == 1)
    assert s["connects"] == 1 and s["disconnects"] == 0 and "boom" in s["last_error"], s
    assert wait_for(lambda: len(received(broker, "leader-raise", "PUBACK")) == 2, 5)  # both acknowledged


def test_a_broker_restart_is_followed_with_backoff_and_the_loop_keeps_ticking(broker, mq):
    m = mq("leader-restart")
    m.connected()
    m.ok("ticks")
    broker.stop()  # connections refused until it is back
    t0 = time.monotonic()
    m.until(lambda s: s["state"] != "connected")
    time.sleep(max(0.0, 3.5 - (time.monotonic() - t0)))
    s = m.stats()
    # 1 attempt at once, then waits of 0.5-1 s, 1-2 s, 2-4 s: 2 to 4 in 3.5 s, not dozens.
    assert 2 <= s["attempts"] - 1 <= 4 and s["connects"] == 1 and s["disconnects"] == 1, s
    ticks = m.ok("ticks")
    assert ticks["gap"] < GAP_MS, ticks
    broker.start()
    s = m.connected(2, timeout=8)
    m.ok("pub", topic="t/restart/x", payload="back")
    m.until(lambda s: s["published"] >= 1)


def test_keepalive_pings_hold_an_idle_connection_and_a_stopped_broker_is_noticed(broker, mq):
    m = mq("leader-ka")
    m.connected()
    time.sleep(2.5 * KA)  # idle: the broker drops a client silent for 1.5 keepalives
    s = m.stats()
    assert s["connects"] == 1 and s["disconnects"] == 0 and s["state"] == "connected", s
    assert len(received(broker, "leader-ka", "PINGREQ")) >= 3
    m.ok("ticks")
    broker.pause()  # the kernel still takes the bytes; nothing answers
    t0 = time.monotonic()
    m.until(lambda s: s["state"] != "connected", timeout=3 * KA)
    took = time.monotonic() - t0
    # A ping at most KA/2 after the last exchange, its answer due within KA.
    assert took <= 1.5 * KA + 0.7, took
    s = m.stats()
    assert "PINGRESP" in s["last_error"] and s["disconnects"] == 1, s
    time.sleep(1.5)  # attempts while it is stopped: TCP connects, no CONNACK
    ticks = m.ok("ticks")
    assert ticks["gap"] < GAP_MS, ticks
    broker.resume()
    m.connected(2, timeout=8)


def test_an_unreachable_broker_never_blocks_the_loop(broker, mq):
    # A listener whose queue is full: the client's SYNs go unanswered, as for a host that is gone.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(hole.getsockname())
        fillers.append(f)
    try:
        m = mq("leader-hole", port=hole.getsockname()[1])
        m.ok("ticks")
        time.sleep(3.2)
        s = m.stats()
        assert s["connects"] == 0 and s["attempts"] >= 2 and "CONNACK" in s["last_error"], s
        ticks = m.ok("ticks")
        assert ticks["gap"] < GAP_MS and ticks["n"] >= 25, ticks
    finally:
        hole.close()
        for f in fillers:
            f.close()


def test_tls_to_mosquitto_checked_against_its_certificate(broker, mq):
    m = mq("leader-tls", host="localhost", resolve="127.0.0.1", port=broker.tls_port, tls={"ca": str(broker.cert)})
    sub = Sub(broker.port, ["t/tls/x"])
    try:
        m.connected()
        m.ok("pub", topic="t/tls/x", payload="sealed", qos=1)
        assert wait_for(lambda: sub.payloads("t/tls/x") == [b"sealed"], 5), sub.msgs
        m.until(lambda s: s["in_flight"] == 0)
    finally:
        sub.close()
    # Another certificate than the broker's: the handshake fails, the client backs off.
    other = broker.dir / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-keyout", str(broker.dir / "other.key"), "-out",
                    str(other)], check=True, capture_output=True)
    bad = mq("leader-tls-bad", host="localhost", resolve="127.0.0.1", port=broker.tls_port, tls={"ca": str(other)})
    s = bad.until(lambda s: s["attempts"] >= 2 and s["state"] != "connecting")
    assert s["connects"] == 0 and s["last_error"], s
