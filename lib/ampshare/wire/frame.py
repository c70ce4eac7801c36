# The wire protocol between leader and followers: one UDP datagram per message, struct-packed,
# little-endian, documented byte by byte in docs/protocol.md. Sans-I/O: bytes in, bytes out.
# This module holds what both sides share; what each side sends and reads is in leader.py and
# follower.py beside it, so neither role keeps the other's code in RAM. The meaning of the
# flags is the cores' (core/link.py).
#
# After pairing every message ends in a 16-byte HMAC-SHA256 tag under the follower's own key.
# Freshness: the leader numbers its COMMANDs under its boot epoch and echoes the follower's
# boot epoch; the follower numbers its STATEs under its own boot epoch. A receiver accepts
# only what is newer than the newest it accepted, so a replayed or reordered old packet is
# dropped. Both epochs are boot counters kept on flash by the shells.
import hashlib
import struct
from array import array

from micropython import const

from ampshare.core.ints import SMALL_MAX

VERSION = const(1)
MAGIC = b"\xa5\x53"  # 0xA5 'S'
_MAGIC_0 = const(0xA5)
_MAGIC_1 = const(0x53)
HELLO = const(1)
PAIR = const(2)
COMMAND = const(3)
STATE = const(4)

TAG_LEN = const(16)  # HMAC-SHA256 truncated to 128 bits (RFC 2104 allows half or more)
KEY_LEN = const(32)
UID_LEN = const(6)  # the follower's Wi-Fi MAC
ID_MAX = const(24)  # charger ids on the wire: long enough for "carport-west-12"

HEAD = "<2sBB"  # magic, version, type
HEAD_LEN = const(4)
# Bodies after the header (the tag, where there is one, follows the body).
FMT_HELLO = "<6sHHBB"  # uid, firmware, nameplate dA, phases, flags
# A paired unit's HELLO goes on with the charger id its PAIR gave it (length, id): a claim the
# page shows, so a unit whose leader forgot it (replaced, reset) is found. No authority.
FMT_CLAIM = "<B24s"
FMT_PAIR = "<6s8sIBB24s32s"  # uid, nonce, leader epoch, charger index, id length, id, wrapped key
FMT_COMMAND = "<6sIIIHHBB"  # uid, leader epoch, seq, follower epoch echo, current dA, fallback dA, phases, flags
FMT_STATE = "<6sIIIBBHHHHHBBIII"  # uid, f-epoch, seq, l-epoch echo, pilot, errors, applied dA,
#              fallback dA, measured cA x3, phases in use, flags, energy Wh, uptime s, l-seq echo
HELLO_LEN = HEAD_LEN + struct.calcsize(FMT_HELLO)
CLAIM_LEN = HELLO_LEN + struct.calcsize(FMT_CLAIM)
PAIR_LEN = HEAD_LEN + struct.calcsize(FMT_PAIR) + TAG_LEN
COMMAND_LEN = HEAD_LEN + struct.calcsize(FMT_COMMAND) + TAG_LEN
STATE_LEN = HEAD_LEN + struct.calcsize(FMT_STATE) + TAG_LEN

# The sequence numbers stay small ints: at this a side starts a new epoch (its shell saves
# it), and the other takes the fresh numbers as newer.
SEQ_MAX = SMALL_MAX

# Why a datagram was dropped: each has a counter.
R_SHORT = const(0)  # shorter than its type needs (truncated)
_R_MAGIC = const(1)  # not ours
_R_OLD_VERSION = const(2)  # an older peer: refused, not guessed at
R_TYPE = const(3)  # unknown or unexpected message type for this role
R_PEER = const(4)  # from or for a follower we do not know
_R_AUTH = const(5)  # tag does not match: forged or altered
R_REPLAY = const(6)  # not newer than the newest accepted: replayed or reordered
R_EPOCH = const(7)  # echoes another boot of ours: from before a restart
R_FIELD = const(8)  # authentic but a value out of range
R_WINDOW = const(9)  # PAIR outside the pairing window
REASONS = ("short", "magic", "old_version", "type", "peer", "auth", "replay", "epoch",
           "field", "window")
# Amperes on the wire: deciamps for what is set (the allocation step), centiamps measured.
DA = const(100)
CA = const(10)
_U16_MAX = const(65535)


class Rejected(Exception):
    def __init__(self, reason):
        super().__init__(REASONS[reason])
        self.reason = reason


def header(data):
    """The message type of a datagram, or Rejected with the reason."""
    if len(data) < HEAD_LEN:
        raise Rejected(R_SHORT)
    # Read byte by byte where it lies: unpacking would make a tuple and a bytes a datagram.
    if data[0] != _MAGIC_0 or data[1] != _MAGIC_1:
        raise Rejected(_R_MAGIC)
    if data[2] < VERSION:
        raise Rejected(_R_OLD_VERSION)
    # A newer version keeps this layout and only adds trailing fields, which we ignore.
    return data[3]


def uid_of(data):
    """The follower uid right after the header (every message type carries it first)."""
    if len(data) < HEAD_LEN + UID_LEN:
        raise Rejected(R_SHORT)
    return bytes(data[HEAD_LEN:HEAD_LEN + UID_LEN])


def is_uid(data, uid):
    """True when the datagram names this uid: compared in place, no copy of it made."""
    if len(data) < HEAD_LEN + UID_LEN:
        raise Rejected(R_SHORT)
    for i in range(UID_LEN):
        if data[HEAD_LEN + i] != uid[i]:
            return False
    return True


def u16(data, at):
    return data[at] | data[at + 1] << 8


def u32(data, at):
    return data[at] | data[at + 1] << 8 | data[at + 2] << 16 | data[at + 3] << 24


# ---- HMAC --------------------------------------------------------------------------------

_BLOCK = const(64)  # SHA-256's block: each pad is one block
_PER_BUF = const(8)  # keys a buffer: 256 bytes
_WORDS = const(16)  # a key in 16-bit words: a pad is made in half the steps of bytes, and every
#                     word stays a small int (32-bit words would not, on the ESP32)


class Keys:
    """HMAC-SHA256 keys (RFC 2104): 32 bytes a key and no object per follower, so 64
    followers cost 2 KB, in buffers of 8 keys (found on a fragmented heap where one piece of
    2 KB may not be). The pads are made for each tag in two buffers of a block, both from one
    pass over the key's 16 words, where pads kept ready would cost 6 KB more of a leader's
    heap. `at(i)` picks the key that tag() and check() use next, without allocating a view
    object. Keys are kept as 16-bit words in memory order (both our targets, the ESP32 and
    x86 or ARM hosts, are little-endian): hashed as they lie, they are the key's bytes."""

    def __init__(self, n=1, key=None):
        self._bufs = [array("H", [0] * (min(_PER_BUF, n - b) * _WORDS)) for b in range(0, n, _PER_BUF)]
        # Both pads of a tag, made in one pass over the key: their second halves are the pad
        # bytes alone and never change, so they are filled here once.
        self._pin = array("H", [0] * _WORDS + [0x3636] * _WORDS)
        self._pout = array("H", [0] * _WORDS + [0x5C5C] * _WORDS)
        self._i = 0
        # One key alone (a follower's): both pads kept ready, 128 bytes for a tag in a quarter
        # of the time. A leader's 64 keys make theirs for each tag instead (8 KB saved).
        self._ready = None
        self._one = n == 1
        if key is not None:
            self.set(0, key)

    def set(self, i, key):
        if len(key) != KEY_LEN:
            raise ValueError("key must be 32 bytes")
        buf, o = self._bufs[i // _PER_BUF], (i % _PER_BUF) * _WORDS
        for j in range(_WORDS):
            buf[o + j] = key[2 * j] | key[2 * j + 1] << 8
        if self._one:
            self._i = i
            self._pads()
            self._ready = (bytes(self._pin), bytes(self._pout))

    def at(self, i):
        self._i = i
        return self

    def raw(self, i=0):
        buf, o = self._bufs[i // _PER_BUF], (i % _PER_BUF) * _WORDS
        out = bytearray(KEY_LEN)
        for j in range(_WORDS):
            out[2 * j] = buf[o + j] & 0xFF
            out[2 * j + 1] = buf[o + j] >> 8
        return bytes(out)

    def _pads(self):
        # The key XOR 0x36 (inner pad) and XOR 0x5C (outer), each word read once for both.
        i, pin, pout = self._i, self._pin, self._pout
        k, o = self._bufs[i // _PER_BUF], (i % _PER_BUF) * _WORDS
        for j in range(_WORDS):
            w = k[o + j]
            pin[j] = w ^ 0x3636
            pout[j] = w ^ 0x5C5C

    def tag(self, msg):
        ready = self._ready
        if ready:
            pin, pout = ready
        else:
            self._pads()
            pin, pout = self._pin, self._pout
        inner = hashlib.sha256(pin)
        inner.update(msg)
        outer = hashlib.sha256(pout)
        outer.update(inner.digest())
        return outer.digest()  # the tag is its first TAG_LEN bytes

    def check(self, data):
        """The authenticated body (without the tag), or Rejected(_R_AUTH)."""
        n = len(data) - TAG_LEN
        body = memoryview(data)[:n]
        want = self.tag(body)
        diff = 0
        for i in range(TAG_LEN):  # constant time: no early exit on the first difference
            diff |= want[i] ^ data[n + i]
        if diff:
            raise Rejected(_R_AUTH)
        return body

    def seal(self, buf, body):
        """Writes the tag of body (a view of buf's first bytes) right after it, in buf."""
        # "16s" takes the digest's first TAG_LEN bytes, in place: no slice of it is made.
        struct.pack_into("16s", buf, len(body), self.tag(body))


def Key(key):
    """One key on its own (a follower's, a pairing code's)."""
    return Keys(1, key)


def sealed(key, fmt, mtype, *fields):
    body = struct.pack(HEAD, MAGIC, VERSION, mtype) + struct.pack(fmt, *fields)
    return body + key.tag(body)[:TAG_LEN]


def opened(data, need, key, fmt):
    if len(data) < need:
        raise Rejected(R_SHORT)
    key.check(data)
    return struct.unpack_from(fmt, data, HEAD_LEN)


def ca(ma):
    return 0 if ma < 0 else min(_U16_MAX, ma // CA)


# The PAIR's key travels wrapped under the follower's pairing code (printed on its label,
# typed by the installer on the leader's page) and tagged with a key derived from that code.

def pairing_key(code):
    return Key(hashlib.sha256(b"ampshare-pair" + code).digest())


def keystream(code, nonce, uid):
    h = hashlib.sha256(b"ampshare-wrap" + code)
    h.update(nonce)
    h.update(uid)
    return h.digest()


def da(ma):
    return min(_U16_MAX, ma // DA)


class Freshness:
    """The newest (epoch, seq) accepted from each of n peers; older or equal is a replay.
    Arrays, not an object per peer: both numbers are 32-bit on the wire."""

    def __init__(self, n=1):
        self.epoch = array("I", bytes(4 * n))
        self.seq = array("I", bytes(4 * n))
        self.seen = bytearray(n)

    def admit(self, i, epoch, seq):
        if self.seen[i]:
            e = self.epoch[i]
            if epoch < e or (epoch == e and seq <= self.seq[i]):
                raise Rejected(R_REPLAY)
        self.epoch[i] = epoch
        self.seq[i] = seq
        self.seen[i] = 1

    def forget(self, i):
        self.seen[i] = 0
