"""The captive portal's DNS (lib/ampshare/web/dns.py): a Portal in the unix port on loopback
answers real queries sent from here. Every A query gets the leader's address, other types an
empty NOERROR, anything else nothing, and the portal keeps answering after any datagram."""
import ast
import binascii
import fcntl
import random
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_system import free_ports, wait_for
from vm import ROOT, micropython, mp_env

IP = "192.168.4.1"
A, AAAA, HTTPS, ANY = 1, 28, 65, 255
IN = 1
TTL_S = 10
TICK_S = 0.05  # tests/mp/dns_portal.py's TICK_MS


def wire_name(name):
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label) + b"\0"


def query(name, qtype=A, qid=0x1234, flags=0x0100, qdcount=1, qclass=IN, arcount=0, tail=b""):
    """A query as a phone's stub resolver sends it: RD set, one question."""
    head = struct.pack(">HHHHHH", qid, flags, qdcount, 0, 0, arcount)
    raw = name if isinstance(name, bytes) else wire_name(name)
    return head + raw + struct.pack(">HH", qtype, qclass) + tail


def dotted(length):
    """A name of exactly length characters, in labels of at most 63."""
    labels, left = [], length
    while left > 0:
        n = min(63, left)
        if left == n + 1:
            n -= 1  # no label would be left for after the dot
        labels.append(chr(ord("a") + len(labels)) * n)
        left -= n + 1  # the label and the dot before the next
    return ".".join(labels)


def expected(q):
    """The reply the rules call for, or None when q must be dropped: a reading of the rules of
    its own, in plain Python, that the firmware is checked against."""
    if len(q) < 12:
        return None
    qid, flags, qdcount = struct.unpack(">HHH", q[:6])
    if flags & 0x8000 or (flags >> 11) & 0xF or qdcount != 1:
        return None
    i = 12
    while True:
        if i >= len(q):
            return None
        if q[i] == 0:
            break
        if q[i] & 0xC0:
            return None
        i += 1 + q[i]
    if len(q[12:i + 1]) > 255 or i + 5 > len(q):
        return None
    qtype, qclass = struct.unpack(">HH", q[i + 1:i + 5])
    is_a = qtype == A and qclass == IN
    reply = struct.pack(">HHHHHH", qid, 0x8400 | (flags & 0x0100), 1, int(is_a), 0, 0) + q[12:i + 5]
    if is_a:
        reply += struct.pack(">HHHIH", 0xC00C, A, IN, TTL_S, 4) + socket.inet_aton(IP)
    return reply


class Dns:
    """The portal's process and a client socket; tallies what it saw answered and dropped."""

    def __init__(self, proc, port):
        self.proc, self.port = proc, port
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(1)
        self.answered = self.dropped = 0
        self.n = 0

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.split())

    def send(self, data):
        self.sock.sendto(data, ("127.0.0.1", self.port))

    def exchange(self, data):
        """data's reply, or None; a good query sent after it must still be answered, and
        (datagrams being handled in order) only then is it certain that none came for data."""
        if self.proc.poll() is not None:
            pytest.fail("the portal's process has exited: %s" % self.stderr())
        self.n += 1
        sentinel = query("sentinel-%d.ampshare" % self.n, qid=self.n & 0xFFFF)
        self.send(data)
        self.send(sentinel)
        replies = []
        while True:
            try:
                got = self.sock.recv(4096)
            except socket.timeout:
                pytest.fail("the portal stopped answering after %r (stderr: %s)" % (data[:40], self.stderr()))
            if got[:2] == sentinel[:2] and got[12:len(sentinel)] == sentinel[12:]:
                assert got == expected(sentinel), "a good query's reply is wrong: %r" % got
                break
            replies.append(got)
        assert len(replies) <= 1, replies
        self.answered += 1 + len(replies)
        self.dropped += 1 - len(replies)
        return replies[0] if replies else None

    def stderr(self):
        return "" if self.proc.poll() is None else self.proc.stderr.read()


@pytest.fixture(scope="module")
def dns():
    # The portal binds with SO_REUSEADDR, as every Link does: two of them could share a port
    # that both found free. Another run (a parallel worker) waits until this one is bound.
    with open(Path(tempfile.gettempdir()) / "ampshare-test-dns.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        port = free_ports(27100, 27199, kind=socket.SOCK_DGRAM)[0]
        proc = subprocess.Popen([micropython(), str(ROOT / "tests" / "mp" / "dns_portal.py"), "127.0.0.1", str(port),
                                 IP], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=mp_env(), cwd=ROOT, text=True)
        d = Dns(proc, port)
        assert wait_for(lambda: d.lines and d.lines[0] == ["ready"], 5, every=0.01), d.stderr()
    yield d
    proc.terminate()
    proc.wait(timeout=5)
    d.sock.close()


def parse(reply):
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", reply[:12])
    return {"id": qid, "qr": flags >> 15, "opcode": (flags >> 11) & 0xF, "aa": (flags >> 10) & 1,
            "tc": (flags >> 9) & 1, "rd": (flags >> 8) & 1, "ra": (flags >> 7) & 1, "rcode": flags & 0xF,
            "counts": (qd, an, ns, ar)}


# ---- answers -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["connectivitycheck.gstatic.com", "Captive.Apple.COM", "www.msftconnecttest.com",
                                  "example"])
def test_every_a_query_gets_the_leaders_address(dns, name):
    q = query(name, qid=0xBEEF)
    reply = dns.exchange(q)
    assert reply is not None
    h = parse(reply)
    assert h["id"] == 0xBEEF and h["qr"] == 1 and h["aa"] == 1 and h["rd"] == 1
    assert h["opcode"] == h["tc"] == h["ra"] == h["rcode"] == 0
    assert h["counts"] == (1, 1, 0, 0)
    question = q[12:]
    assert reply[12:12 + len(question)] == question  # echoed as asked, its letters' case included
    record = reply[12 + len(question):]
    pointer, rtype, rclass, ttl, rdlen = struct.unpack(">HHHIH", record[:12])
    assert (pointer, rtype, rclass, rdlen) == (0xC00C, A, IN, 4)
    assert 0 < ttl <= 60  # short: a phone that leaves the AP forgets the leader soon
    assert socket.inet_ntoa(record[12:]) == IP and len(record) == 16
    assert reply == expected(q)


def test_the_askers_rd_bit_is_copied_and_its_edns_record_not_echoed(dns):
    reply = dns.exchange(query("captive.apple.com", flags=0x0000))
    assert parse(reply)["rd"] == 0 and socket.inet_ntoa(reply[-4:]) == IP
    # Android's resolver adds an EDNS OPT record (ARCOUNT 1): the question is still answered.
    opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)
    q = query("connectivitycheck.gstatic.com", arcount=1, tail=opt)
    reply = dns.exchange(q)
    assert parse(reply)["counts"] == (1, 1, 0, 0) and reply == expected(q)


@pytest.mark.parametrize("qtype,qclass", [(AAAA, IN), (HTTPS, IN), (ANY, IN), (A, 3)])
def test_other_types_get_noerror_and_no_answer(dns, qtype, qclass):
    q = query("connectivitycheck.gstatic.com", qtype=qtype, qclass=qclass, qid=0x0A0A)
    reply = dns.exchange(q)
    assert reply is not None
    h = parse(reply)
    assert h["id"] == 0x0A0A and h["qr"] == 1 and h["rcode"] == 0 and h["counts"] == (1, 0, 0, 0)
    assert reply[12:] == q[12:]  # the question, and nothing after it


def test_a_long_name_is_answered_up_to_the_limit(dns):
    for length in (250, 253):  # 253 characters are 255 octets on the wire, the most a name has
        q = query(dotted(length))
        assert len(wire_name(dotted(length))) == length + 2
        reply = dns.exchange(q)
        assert reply is not None and socket.inet_ntoa(reply[-4:]) == IP, length
    assert dns.exchange(query(dotted(254))) is None  # 256 octets


# ---- drops -------------------------------------------------------------------------------

_rng = random.Random(53)
GARBAGE = {
    "random bytes": bytes(_rng.randrange(256) for _ in range(40)),
    "random bytes, long": bytes(_rng.randrange(256) for _ in range(500)),
    "empty": b"",
    "a truncated header": query("captive.apple.com")[:7],
    "a header alone": query("captive.apple.com")[:12],
    "a name cut short": query("captive.apple.com")[:20],
    "no type and class": query("captive.apple.com")[:-4],
    "half a type": query("captive.apple.com")[:-3],
    "no class": query("captive.apple.com")[:-2],
    "half a class": query("captive.apple.com")[:-1],
    "a response": query("captive.apple.com", flags=0x8180),
    "an inverse query": query("captive.apple.com", flags=0x0900),
    "a notify": query("captive.apple.com", flags=0x2100),
    "two questions": query("captive.apple.com", qdcount=2) + wire_name("x") + struct.pack(">HH", A, IN),
    "no question": query("captive.apple.com", qdcount=0),
    "a compression pointer": query(b"\x03www\xc0\x0c"),
    "a pointer as the whole name": query(b"\xc0\x0c"),
    # Read as a label's length, the pointer's 0xC0 would make a well-formed name of 192 bytes.
    "a pointer with a label's room after it": query(b"\xc0" + b"a" * 192 + b"\0"),
    "a 64-byte label": query("a" * 64 + ".com"),
    "a 300-byte label": query(b"\xff" + b"a" * 300 + b"\0"),
    "an extended label type": query(b"\x41" + b"a" * 65 + b"\0"),
    "a name over 255 octets": query(dotted(254)),
    "a name of 400 octets": query(".".join(["a" * 63] * 6) + ".bb"),
}


@pytest.mark.parametrize("what", GARBAGE)
def test_garbage_gets_no_answer_and_the_portal_answers_the_next_query(dns, what):
    assert expected(GARBAGE[what]) is None
    assert dns.exchange(GARBAGE[what]) is None  # exchange() fails if the next query goes unanswered


@st.composite
def datagrams(draw):
    # Near misses of a query: any flags and counts, labels of any length, stray bytes (pointers
    # among them) in the name, any type and class, cut anywhere, with anything after.
    head = struct.pack(">HHHHHH", draw(st.integers(0, 0xFFFF)),
                       draw(st.sampled_from([0x0100, 0x0100, 0x0000, 0x0130, 0x8180, 0x2100]) | st.integers(0, 0xFFFF)),
                       draw(st.sampled_from([1] * 12 + [0, 2, 0x0101])), draw(st.integers(0, 2)), 0,
                       draw(st.integers(0, 1)))
    label = st.integers(1, 63).map(lambda n: bytes([n]) + b"a" * n)
    odd = st.integers(64, 255).map(lambda n: bytes([n]) + b"a" * n) | st.binary(min_size=1, max_size=3)
    name = b"".join(draw(st.lists(st.sampled_from([True] * 9 + [False]).flatmap(lambda ok: label if ok else odd),
                                  max_size=6))) + b"\0"
    tail = struct.pack(">HH", draw(st.sampled_from([A, AAAA, HTTPS]) | st.integers(0, 0xFFFF)),
                       draw(st.sampled_from([IN, IN, ANY]) | st.integers(0, 0xFFFF))) + draw(st.binary(max_size=20))
    q = head + name + tail
    return q[:draw(st.integers(0, len(q)))] if draw(st.integers(0, 3)) == 0 else q[:512]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=512) | datagrams())
def test_any_datagram_gets_what_the_rules_say(dns, data):
    assert dns.exchange(data) == expected(data)


def test_answer_takes_nothing_from_the_heap():
    # Under heap_lock, any allocation raises MemoryError: answer() must not need one, for an
    # answer, an empty answer or a drop, from bytes (the socket's) or a memoryview.
    cases = [query("connectivitycheck.gstatic.com"), query(dotted(253)), query("example.com", qtype=AAAA),
             GARBAGE["a compression pointer"], GARBAGE["a response"], GARBAGE["a name cut short"]]
    script = "\n".join([
        "import binascii, micropython",
        "from ampshare.web.dns import UDP_MAX, answer",
        "out, ip = bytearray(UDP_MAX), bytes((192, 168, 4, 1))",
        "res = []",
        "for h in %r:" % [binascii.hexlify(c).decode() for c in cases],
        "    for q in (binascii.unhexlify(h), memoryview(binascii.unhexlify(h))):",
        "        micropython.heap_lock()",
        "        try:",
        "            n = answer(q, ip, out)",
        "        except MemoryError:",
        "            n = -1",
        "        micropython.heap_unlock()",
        "        res.append(n)",
        "        res.append(binascii.hexlify(out[:n]).decode() if n > 0 else '')",
        "print(res)",
    ])
    proc = subprocess.run([micropython(), "-c", script], capture_output=True, text=True, env=mp_env(), cwd=ROOT,
                          timeout=10)
    assert proc.returncode == 0, proc.stderr
    got = ast.literal_eval(proc.stdout)
    for i, c in enumerate(cases):
        want = expected(c)
        for k in (0, 2):  # bytes, then memoryview
            n, out = got[4 * i + k], got[4 * i + k + 1]
            assert n != -1, "answer() allocated for %r" % c[:30]
            assert n == (len(want) if want else 0) and binascii.unhexlify(out) == (want or b"")


def test_the_counters_agree_and_the_loop_never_waited_on_the_socket(dns):
    dns.exchange(query("captive.apple.com"))
    dns.exchange(GARBAGE["a response"])
    want = [str(dns.answered), str(dns.dropped), "0"]
    assert wait_for(lambda: dns.lines[-1] == want, 2, every=0.01), (dns.lines[-1], want)
    # Idle, the portal waits for a datagram in the event loop's I/O queue, not in the socket:
    # its neighbour task keeps its period.
    before = len(dns.lines)
    time.sleep(0.5)
    assert len(dns.lines) - before >= 0.5 / TICK_S / 2, dns.lines[before:]
