# MQTT 3.1.1 packets (OASIS Standard, 29 October 2014; section numbers below are its), sans-I/O.
# What a client needs and no more: it encodes CONNECT, PUBLISH (QoS 0 and 1), PUBACK, SUBSCRIBE,
# PINGREQ and DISCONNECT, and decodes what a broker sends a client: CONNACK, PUBLISH, PUBACK,
# SUBACK and PINGRESP. Anything else from a broker is malformed.
#
# The encoders write into a buffer the caller keeps and return the index after what they wrote;
# the Reader takes bytes as they arrive into a buffer of its own, capped at IN_MAX. Integers
# only, and nothing allocates on the heap once the buffers exist, but connect() (once per
# client) and the slice of a memoryview that Reader.feed copies a body through.
from micropython import const

# The largest packet we accept from a broker (its remaining length). What the leader subscribes
# to are commands (a limit in A or W, a mode) and a meter's three numbers: tens of bytes with
# their topic. A larger packet is nothing we asked for (a stranger's retained document on our
# topic, a misrouted dump): the Reader reports it as OVERSIZED as soon as its length is known,
# before its body arrives, and the client resets the connection (MQTT has no way to skip a packet
# but to read it through, up to 256 MB). 1 KB also keeps the buffer one small allocation.
IN_MAX = const(1024)

# Packet types (the fixed header's high nibble, 2.2.1), as Reader.event reports them.
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
SUBACK = const(9)
PINGRESP = const(13)
# Reader.event on an error: the stream cannot be followed past either.
MALFORMED = const(-1)
OVERSIZED = const(-2)

SUBACK_FAILURE = const(0x80)  # 3.9.3: a SUBACK's return code for a refused topic
# 3.2.2.3: CONNACK's return codes; a code past these is reported by its number.
CONNACK_TEXT = ("accepted", "unacceptable protocol version", "identifier rejected", "server unavailable",
                "bad user name or password", "not authorized")

_LEN_MAX = const(268435455)  # 2.2.3: the remaining length is at most four bytes of seven bits
_SHIFT_MAX = const(21)  # the fourth length byte's shift: a fifth byte is malformed
_STR_MAX = const(65535)  # 1.5.3: a string's length is two bytes
_LEVEL = const(4)  # 3.1.2.2: protocol level 4 is 3.1.1
_CONNECT_HEAD = const(10)  # 3.1.2: "MQTT" with its length, the level, the flags, the keepalive
# 2.2.1 types, shifted into a fixed header's first byte, with the flags 2.2.2 requires.
_T_CONNECT = const(0x10)
_T_PUBLISH = const(0x30)
_T_PUBACK = const(0x40)
_T_SUBSCRIBE = const(0x82)  # 3.8.1: SUBSCRIBE's flags are 0010
_T_PINGREQ = const(0xC0)
_T_DISCONNECT = const(0xE0)
_PLUS = const(0x2B)
_HASH = const(0x23)


def _len_size(n):
    if n < 0x80:
        return 1
    if n < 0x4000:
        return 2
    if n < 0x200000:
        return 3
    if n <= _LEN_MAX:
        return 4
    raise ValueError("mqtt: a packet over 256 MB")


def _put_len(out, i, n):
    while n > 0x7F:
        out[i] = n & 0x7F | 0x80
        n >>= 7
        i += 1
    out[i] = n
    return i + 1


def _put_u16(out, i, n):
    out[i] = n >> 8
    out[i + 1] = n & 0xFF
    return i + 2


def _put_str(out, i, s):
    # s: bytes (a bytearray's slice assignment takes no str)
    n = len(s)
    i = _put_u16(out, i, n)
    out[i:i + n] = s
    return i + n


def _room(out, i, n):
    # A slice assignment past the end would grow the buffer (a new allocation): refuse instead.
    if i + n > len(out):
        raise ValueError("mqtt: a packet of %d bytes does not fit its buffer" % n)


def _b(s, what):
    if s is None:
        return None
    b = s.encode() if isinstance(s, str) else bytes(s)
    if len(b) > _STR_MAX:
        raise ValueError("mqtt: %s over 65535 bytes" % what)
    return b


def connect(client_id, keepalive_s, user=None, password=None, will_topic=None, will_payload=b"",
            will_retain=False, will_qos=0, clean=True):
    """The CONNECT packet as a new bytearray (3.1): a client builds it once and sends it on every
    connect. Strings may be str (UTF-8) or bytes."""
    if not 0 <= keepalive_s <= 0xFFFF:
        raise ValueError("mqtt: keepalive 0..65535 s")
    if password is not None and user is None:
        raise ValueError("mqtt: a password needs a user name")  # 3.1.2.9
    if not 0 <= will_qos <= 2:
        raise ValueError("mqtt: will QoS 0..2")
    cid = _b(client_id, "client id")
    if not cid and not clean:
        raise ValueError("mqtt: an empty client id needs a clean session")  # 3.1.3.1
    flags = 2 if clean else 0
    size = _CONNECT_HEAD + 2 + len(cid)
    wt = _b(will_topic, "will topic")
    if wt is not None:
        if not wt or _PLUS in wt or _HASH in wt:
            raise ValueError("mqtt: the will's topic must be a topic name, without wildcards")
        wp = _b(will_payload, "will payload")
        flags |= 4 | will_qos << 3 | (0x20 if will_retain else 0)
        size += 4 + len(wt) + len(wp)
    u = _b(user, "user name")
    if u is not None:
        flags |= 0x80
        size += 2 + len(u)
    p = _b(password, "password")
    if p is not None:
        flags |= 0x40
        size += 2 + len(p)
    out = bytearray(1 + _len_size(size) + size)
    out[0] = _T_CONNECT
    i = _put_len(out, 1, size)
    i = _put_str(out, i, b"MQTT")
    out[i] = _LEVEL
    out[i + 1] = flags
    i = _put_u16(out, i + 2, keepalive_s)
    i = _put_str(out, i, cid)
    if wt is not None:
        i = _put_str(out, i, wt)
        i = _put_str(out, i, wp)
    if u is not None:
        i = _put_str(out, i, u)
    if p is not None:
        i = _put_str(out, i, p)
    return out


def publish_size(topic_len, size, qos):
    """The bytes of a whole PUBLISH: header, topic, packet id and a payload of size bytes."""
    rem = 2 + topic_len + (2 if qos else 0) + size
    return 1 + _len_size(rem) + rem


def publish_head(out, i, topic, size, qos=0, retain=False, dup=False, pid=0):
    """A PUBLISH up to its payload at out[i:] (3.3): fixed header, topic, packet id (QoS 1); the
    caller sends the size bytes of payload after it. Returns the index after the head."""
    if qos:
        if qos != 1 or not 0 < pid <= 0xFFFF:
            raise ValueError("mqtt: QoS 0 or 1, and a packet id 1..65535 at QoS 1")
    elif dup:
        raise ValueError("mqtt: DUP is for QoS 1")  # 3.3.1.1
    tl = len(topic)
    rem = 2 + tl + (2 if qos else 0) + size
    _room(out, i, 1 + _len_size(rem) + rem - size)
    out[i] = _T_PUBLISH | (8 if dup else 0) | qos << 1 | (1 if retain else 0)
    i = _put_len(out, i + 1, rem)
    i = _put_str(out, i, topic)
    if qos:
        i = _put_u16(out, i, pid)
    return i


def puback(out, i, pid):
    """PUBACK for an incoming QoS 1 PUBLISH (3.4)."""
    _room(out, i, 4)
    out[i] = _T_PUBACK
    out[i + 1] = 2
    return _put_u16(out, i + 2, pid)


def subscribe(out, i, pid, topic, qos):
    """SUBSCRIBE to one topic filter at QoS 0 or 1 (3.8)."""
    if not 0 <= qos <= 1 or not 0 < pid <= 0xFFFF:
        raise ValueError("mqtt: QoS 0 or 1, and a packet id 1..65535")
    rem = 2 + 2 + len(topic) + 1
    _room(out, i, 1 + _len_size(rem) + rem)
    out[i] = _T_SUBSCRIBE
    i = _put_len(out, i + 1, rem)
    i = _put_u16(out, i, pid)
    i = _put_str(out, i, topic)
    out[i] = qos
    return i + 1


def pingreq(out, i):
    _room(out, i, 2)
    out[i] = _T_PINGREQ
    out[i + 1] = 0
    return i + 2


def disconnect(out, i):
    _room(out, i, 2)
    out[i] = _T_DISCONNECT
    out[i + 1] = 0
    return i + 2


class Reader:
    """A broker's packets from the bytes of a stream as they arrive, one packet at a time.

    feed(data, i, end) takes data[i:end] (data: a memoryview, so that a body is copied by
    slicing it) and returns the index it stopped at: end, or just past a packet's last byte, or
    past the byte that showed an error. event then says what it stopped at:
      0          more bytes are needed;
      a type     a whole packet (CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP): its body is in
                 buf[:size] until the next feed(), with what it says decoded below;
      MALFORMED  not a packet a broker may send a client (a fifth length byte, a type or flags a
                 broker never sends, a length or field out of its bounds);
      OVERSIZED  a packet longer than the buffer (reported once its length is known).
    After an error feed() reads nothing more: reset() for the next connection.

    Decoded: CONNACK: code (its return code), present. PUBLISH: topic in buf[2:topic_end],
    payload in buf[payload:size], qos, retain, dup, pid (0 at QoS 0). PUBACK: pid. SUBACK: pid,
    its return codes in buf[2:size] (0, 1, 2 or SUBACK_FAILURE).
    """

    def __init__(self, cap=IN_MAX):
        self.buf = bytearray(cap)
        self.reset()

    def reset(self):
        self.event = 0
        self._state = 0  # 0: the first byte, 1: the remaining length, 2: the body
        self._shift = 0
        self._n = 0
        self.kind = self.flags = self.size = 0
        self.code = self.present = 0
        self.pid = self.qos = self.retain = self.dup = 0
        self.topic_end = self.payload = 0

    def feed(self, data, i, end):
        ev = self.event
        if ev:
            if ev < 0:
                return i
            self.event = 0
            self._state = 0
        buf = self.buf
        while i < end:
            st = self._state
            if st == 0:
                b = data[i]
                i += 1
                self.kind = b >> 4
                self.flags = b & 0x0F
                self.size = 0
                self._shift = 0
                self._state = 1
            elif st == 1:
                b = data[i]
                i += 1
                self.size |= (b & 0x7F) << self._shift
                if b & 0x80:
                    if self._shift == _SHIFT_MAX:
                        self.event = MALFORMED
                        return i
                    self._shift += 7
                    continue
                if self.size > len(buf):
                    self.event = OVERSIZED
                    return i
                self._n = 0
                if not self.size:
                    self.event = self._check()
                    return i
                self._state = 2
            else:
                n = self._n
                k = min(self.size - n, end - i)
                buf[n:n + k] = data[i:i + k]
                i += k
                self._n = n + k
                if self._n == self.size:
                    self.event = self._check()
                    return i
        return i

    def _check(self):
        kind, flags, n, buf = self.kind, self.flags, self.size, self.buf
        if kind == PUBLISH:
            qos = flags >> 1 & 3
            dup = flags >> 3 & 1
            if qos == 3 or (dup and not qos) or n < 2:  # 3.3.1.2, 3.3.1.1
                return MALFORMED
            end = 2 + (buf[0] << 8 | buf[1])
            start = end + 2 if qos else end
            if end == 2 or start > n:  # 4.7.3: a topic name has a character at least
                return MALFORMED
            pid = 0
            if qos:
                pid = buf[end] << 8 | buf[end + 1]
                if not pid:  # 2.3.1
                    return MALFORMED
            for j in range(2, end):
                c = buf[j]
                if c == _PLUS or c == _HASH or not c:  # 3.3.2.1 no wildcards, 1.5.3 no U+0000
                    return MALFORMED
            self.qos, self.dup, self.retain, self.pid = qos, dup, flags & 1, pid
            self.topic_end, self.payload = end, start
            return PUBLISH
        if flags:  # 2.2.2: every other packet a broker sends a client has its flags 0
            return MALFORMED
        if kind == CONNACK:
            if n != 2 or buf[0] & 0xFE:  # 3.2.2.1: the flags' other bits are reserved
                return MALFORMED
            self.present, self.code = buf[0], buf[1]
            return CONNACK
        if kind == PUBACK or kind == SUBACK:
            if n < 2 or (kind == PUBACK and n != 2) or (kind == SUBACK and n < 3):
                return MALFORMED
            self.pid = buf[0] << 8 | buf[1]
            if not self.pid:
                return MALFORMED
            for j in range(2, n):  # a SUBACK's return codes (3.9.3)
                c = buf[j]
                if c > 2 and c != SUBACK_FAILURE:
                    return MALFORMED
            return kind
        if kind == PINGRESP and not n:
            return PINGRESP
        return MALFORMED
