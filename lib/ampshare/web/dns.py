# The captive portal's DNS on the leader's access point. A phone that joins a Wi-Fi network
# asks its maker's probe names (connectivitycheck.gstatic.com, captive.apple.com, …) before it
# trusts it; told that every name is the leader, it finds the leader's page where it expected
# the probe's answer, and opens it as the network's sign-in page: commissioning starts from the
# phone's own prompt, with no address to type. The AP has no internet, so there is nothing else
# to resolve. Other types than A get an empty answer rather than an error, so that the phone
# asks for A instead of giving the name up.
#
# answer() is sans-I/O and writes into one buffer: a datagram costs the heap only what the
# socket's read allocates. Portal is its shell, on the leader's event loop.
import asyncio
from micropython import const

from ampshare.run.udp import Link, _readable

# RFC 1035 4.2.1: a DNS message over UDP is at most 512 bytes unless EDNS says otherwise, and
# we offer no EDNS. Our longest reply is 287 bytes; a longer query (a phone's EDNS padding)
# is cut to this on reading, which leaves its question whole.
UDP_MAX = const(512)
# A phone that leaves the AP must not keep the leader's address for the names it probed (or
# for a name it looked up by chance) for longer than a moment.
TTL_S = const(10)
_HEADER = const(12)
_LABEL_MAX = const(63)  # RFC 1035 2.3.4; a length byte above it is a pointer (0xC0) or unassigned
_NAME_MAX = const(255)  # RFC 1035 2.3.4: its octets with the length bytes and the root's zero
_TYPE_A = const(1)
_CLASS_IN = const(1)
_ANSWER = const(16)  # the record: pointer 2, type 2, class 2, TTL 4, length 2, address 4

# QDCOUNT 1, ANCOUNT 1 or 0, NSCOUNT 0, ARCOUNT 0: the asker's EDNS record is not echoed.
_COUNTS_A = b"\x00\x01\x00\x01\x00\x00\x00\x00"
_COUNTS_NONE = b"\x00\x01\x00\x00\x00\x00\x00\x00"
# The record up to its address: the question's name (a pointer to offset 12), A, IN, the TTL
# and the address's 4 bytes.
_RECORD = bytes((0xC0, _HEADER, 0, _TYPE_A, 0, _CLASS_IN,
                 TTL_S >> 24, TTL_S >> 16 & 255, TTL_S >> 8 & 255, TTL_S & 255, 0, 4))


def answer(query, ip, out):
    """The reply to one datagram, written into out (UDP_MAX bytes) with ip (4 bytes) as every
    name's address: its length, or 0 when the datagram is dropped."""
    n = len(query)
    # A standard query (QR and OPCODE 0) with exactly one question, or nothing to answer.
    if n < _HEADER or query[2] & 0xF8 or query[4] or query[5] != 1:
        return 0
    i = _HEADER
    while True:
        if i >= n:
            return 0  # the name runs past the datagram
        k = query[i]
        if k == 0:
            break
        if k > _LABEL_MAX:
            return 0  # a pointer has nothing to point back to in a question
        i += k + 1
    if i + 1 - _HEADER > _NAME_MAX:
        return 0
    end = i + 5  # past the root's zero, QTYPE and QCLASS
    if end > n:
        return 0
    a = query[i + 1] == 0 and query[i + 2] == _TYPE_A and query[i + 3] == 0 and query[i + 4] == _CLASS_IN
    size = end + _ANSWER if a else end
    if size > len(out):
        return 0
    out[0] = query[0]
    out[1] = query[1]
    out[2] = 0x84 | query[2] & 1  # QR and AA set, the asker's RD copied
    out[3] = 0  # RA 0 (we recurse for nobody), NOERROR
    out[4:_HEADER] = _COUNTS_A if a else _COUNTS_NONE
    # The question as asked, its letters' case included (some resolvers check it). Byte by
    # byte: a slice of the query would be a new object on the heap.
    for j in range(_HEADER, end):
        out[j] = query[j]
    if a:
        out[end:end + 12] = _RECORD
        out[end + 12:size] = ip
    return size


class Portal:
    """Answers every A query that reaches the leader's AP with the leader's own address."""

    def __init__(self, ip, bind="0.0.0.0", port=53):
        if isinstance(ip, str):
            ip = bytes(int(b) for b in ip.split("."))
        if len(ip) != 4:
            raise ValueError("ip: 4 bytes")  # a slice assignment of any other length resizes out
        self.ip = bytes(ip)
        self.link = Link(bind, port)
        self.out = bytearray(UDP_MAX)
        self.dropped = 0  # datagrams that were not a query to answer: malformed, a response, …

    @property
    def answered(self):
        return self.link.sent

    @property
    def unsent(self):
        return self.link.dropped  # replies whose send would have blocked

    async def run(self):
        sock, out, view = self.link.sock, self.out, memoryview(self.out)
        while True:
            try:
                query, addr = sock.recvfrom(UDP_MAX)
            except OSError:
                await _readable(sock)  # nothing there yet (EAGAIN)
                continue
            n = answer(query, self.ip, out)
            if n:
                self.link.send(view[:n], addr)
            else:
                self.dropped += 1
            # A phone that floods the port gets turns like every other task, no more.
            await asyncio.sleep_ms(0)

    def close(self):
        self.link.close()
