# The leader's MQTT 3.1.1 client, on asyncio with a non-blocking socket: nothing a broker does
# (or fails to do) and nothing a publisher sends can block the event loop or raise out of the
# client. Its tasks wait in asyncio's I/O queue and never in the socket; run() reconnects for
# ever, with a capped exponential backoff.
#
# Output is bounded: one slot per topic holds only that topic's latest value. A slot may also
# hold nothing but a key (lazy()): its topic and value are made by the `source` when the writer
# takes it, from the figures the source keeps anyway, so 64 chargers' documents cost no RAM
# while they wait (the latest value is the one rendered). publish() replaces
# the slot's value and returns; the writer sends what the slots hold as fast as the socket takes
# it. A slow or stalled broker makes the values wait in their slots, where newer ones replace
# older ones: nothing queues without bound, and after each connect every topic's latest value
# is sent again (a broker restarted without its store gets every retained value back; a value cut
# off by the drop is not lost). QoS 1 values are kept until their PUBACK, at most _INFLIGHT_MAX at
# once, resent with DUP after _RESEND_MS and after a reconnect; a slot's next value waits for its
# previous one's PUBACK, so that a topic's values arrive in order.
#
# Input: SUBSCRIBE to exact topics (QoS 0 or 1; a wildcard is refused by name: a `#` could pull
# a broker's whole retained store in). Each PUBLISH that comes in goes to on_message(topic,
# payload) as bytes; at QoS 1 it is acknowledged after the callback. A PUBLISH the broker sends
# with RETAIN set is a stored value delivered because we subscribed, not a live one (MQTT 3.1.1,
# 3.3.1.3): it is dropped and counted (`stale`) unless the client is made with retained=True.
# A command or a meter reading kept by a broker for hours must not act as if sent now. A
# callback that raises is counted, never propagated. A packet over packet.IN_MAX is dropped and counted, and the
# connection reset (MQTT cannot skip a packet without reading it through).
#
# The broker's address. On the ESP32, socket.getaddrinfo() with a name blocks the whole VM until
# the DNS answers or lwIP's resolver gives up: the DNS timeout, seconds with every retry (asyncio's
# own open_connection() carries a "TODO this is blocking!" for the same call; micropython#4801
# asks for a non-blocking one, which MicroPython does not have). A literal IP address is parsed
# without any I/O and never blocks. So: give the broker as an IP address, or pass `resolve`, a callable the
# shell supplies: resolve(host, port) returns the address for socket.connect() (or None: not
# known yet, try later), and may cache, or be a coroutine that resolves without blocking. Without
# it, getaddrinfo() is called once per (re)connect attempt in the client's own task: with a name
# and a DNS that does not answer, that attempt stalls the loop for the resolver's timeout.
#
# TLS (`tls`: True for an encrypted connection whose certificate is not checked, or an
# ssl.SSLContext the shell has loaded its CA into). MicroPython's ssl wraps the socket with
# mbedTLS, whose handshake needs RAM outside the Python heap, in the ESP-IDF's: about 20 KB of
# record buffers per connection (micropython#6065) and some 38 KB consumed in a handshake
# (espressif/esp-idf#5479), so count 30-40 KB: an estimate from those reports, not measured on our
# board. It must be found free, in large blocks, beside the Python heap and the Wi-Fi stack. The
# handshake runs on the non-blocking socket (do_handshake_on_connect=False) as the first writes
# and reads. Tested in the unix port against Mosquitto's TLS listener (tests/test_mqtt_client.py),
# not on a board.
#
# Tasks: run() is the supervisor (connects, times out, pings, resends, reconnects); per
# connection a writer and, once CONNECT is out, a reader. Each waits in asyncio's queues only.
import asyncio
import random
import socket
from errno import EINPROGRESS
from time import ticks_add, ticks_diff, ticks_ms

from asyncio import core  # type: ignore[attr-defined]  # not in the stubs
from micropython import const

from ampshare.mqtt import packet

# Topics the client publishes to. One state topic (a JSON document) and one Home Assistant
# device-discovery topic per charger: 64 x 2, with the site's, the groups' and the leader's own
# status: 160. A slot costs two references and a flag byte, its dict entry and its topic's bytes.
# Registering one more raises ValueError.
SLOTS_MAX = const(160)
# Topics the client subscribes to (exact ones only): the leader's three command topics (the
# target is in the payload, so their number does not grow with the site), Home Assistant's
# status, and a topic per MQTT meter (config/site.py takes at most 16).
SUBS_MAX = const(20)
# QoS 1 messages unacknowledged at once. QoS 1 is for the few values that must arrive (the
# status, a command's answer); past this a QoS 1 value waits in its slot as the latest value.
_INFLIGHT_MAX = const(4)
# A topic's bytes. Home Assistant's discovery topics, our longest, are under 100 bytes; this
# keeps any PUBLISH's header (1 + 4 + 2 + topic + 2) inside the output buffer.
_TOPIC_MAX = const(255)
# The output buffer: frames are encoded into it, several small ones per write. A value too long
# to fit beside its header is written from its own object after the header.
_OUT = const(512)
# What one read takes from the socket: a command is tens of bytes, an IN_MAX packet 4 reads.
_RX = const(256)
# PUBACKs owed to the broker for QoS 1 messages in: the reader waits while this many are unsent
# (the broker holds back beyond its own in-flight window, 20 by Mosquitto's default).
_ACKS = const(8)
# The supervisor's period: how late a timeout, a ping or the end of a connection is noticed.
# Keepalives are seconds; 5 wake-ups a second cost nothing beside a 1 s control period.
_TICK_MS = const(200)
# TCP handshake, CONNECT and CONNACK: milliseconds on a LAN, seconds from a broker busy loading
# its store; a host that takes longer is treated as gone (never longer than the keepalive).
_CONNECT_MS = const(10000)
# A QoS 1 message without its PUBACK after this is sent again with DUP (and at every reconnect).
_RESEND_MS = const(10000)
# Reconnect: the first wait, doubled after every failed attempt up to the cap, each less a
# random jitter of up to its half (leaders behind one broker do not come back in step after it
# restarts). A connection that lived half a keepalive resets it to the first.
_BACKOFF_FIRST_MS = const(1000)
_BACKOFF_MAX_MS = const(60000)
# A slot's flags.
_DIRTY = const(1)  # holds a value not yet sent on this connection
_RETAIN = const(2)
_QOS1 = const(4)
_FLIGHT = const(8)  # a QoS 1 value of this slot waits for its PUBACK
# An in-flight entry's state.
_F_FREE = const(0)
_F_WAIT = const(1)  # sent, waiting for PUBACK
_F_RESEND = const(2)  # to send again, with DUP
_PID_MAX = const(0xFFFF)

_DISCONNECT = b"\xe0\x00"


def backoff_ms(level_ms, r):
    """The wait before the next attempt: level_ms less a jitter of up to its half (r: a random
    integer >= 0)."""
    return level_ms - r % (level_ms // 2 + 1)


def _name(topic, what):
    """A topic as the client keeps it: its UTF-8 bytes (a bytearray's slice assignment takes
    bytes, not a str)."""
    b = topic.encode() if isinstance(topic, str) else bytes(topic)
    if not b or len(b) > _TOPIC_MAX:
        raise ValueError("mqtt: %s %r: a topic is 1..%d bytes" % (what, topic, _TOPIC_MAX))
    for w in "+#":
        if ord(w) in b:
            if what == "subscribe":
                raise ValueError("mqtt: subscribe %r refused: %r is a wildcard, and the client subscribes "
                                 "to exact topics only" % (topic, w))
            raise ValueError("mqtt: %s %r: %r is a wildcard, not allowed in a topic name" % (what, topic, w))
    if 0 in b:
        raise ValueError("mqtt: %s %r: NUL in a topic" % (what, topic))
    return b


class Client:
    """An MQTT 3.1.1 client: Client(...), then `await run()` in a task of its own.

    will: (topic, payload, retain) or (topic, payload, retain, qos), published by the broker when
    the connection ends without DISCONNECT. resolve, tls: see the module's comment. on_message:
    called with (topic, payload), both bytes, for every PUBLISH that comes in; it runs in the
    reader's task and must return at once (hand the command to the core, do no I/O).
    The page's figures: stats(), or the attributes it reads.
    """

    def __init__(self, host, port, client_id, user=None, password=None, will=None, keepalive_s=60, resolve=None,
                 tls=None, on_message=None, source=None, retained=False):
        if not 0 < keepalive_s <= 0xFFFF:
            raise ValueError("mqtt: keepalive 1..65535 s (0 would leave a silent broker unnoticed)")
        wt, wp, wr, wq = None, b"", False, 0
        if will is not None:
            wt, wp, wr = will[0], will[1], will[2]
            wq = will[3] if len(will) > 3 else 0
        self._hello = packet.connect(client_id, keepalive_s, user, password, wt, wp, wr, wq)
        if tls:
            import ssl
            if tls is True:
                tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                tls.verify_mode = ssl.CERT_NONE  # type: ignore[attr-defined]  # the stubs' SSLContext lacks it
        self.host, self.port = host, port
        self.on_message = on_message
        self._source = source
        self._retained = retained
        self._resolve = resolve
        self._tls = tls
        self._ka = keepalive_s * 1000
        # Buffers, once for the client's life.
        self._rd = packet.Reader()
        self._inv = memoryview(self._rd.buf)
        self._out = bytearray(_OUT)
        self._rx = bytearray(_RX)
        self._rxv = memoryview(self._rx)
        # The slots.
        self._index = {}  # topic as given to publish() -> slot
        self._topics = []
        self._vals = []
        self._flags = bytearray(SLOTS_MAX)
        self._dirty = 0  # slots with _DIRTY
        self._cursor = 0  # where the round-robin over dirty slots goes on
        # Subscriptions.
        self._subs = []
        self._sub_qos = bytearray(SUBS_MAX)
        self._sub_pid = [0] * SUBS_MAX
        self._sub_next = 0  # the next one to send on this connection
        # QoS 1 in flight.
        self._fl_state = bytearray(_INFLIGHT_MAX)
        self._fl_slot = bytearray(_INFLIGHT_MAX)
        self._fl_ret = bytearray(_INFLIGHT_MAX)
        self._fl_pid = [0] * _INFLIGHT_MAX
        self._fl_at = [0] * _INFLIGHT_MAX
        self._fl_val = [None] * _INFLIGHT_MAX
        self._pid = 0
        # PUBACKs owed, in the order their PUBLISH came (4.6).
        self._acks = [0] * _ACKS
        self._nacks = 0
        # The writer waits here when it has nothing to send (as asyncio.Event does, without a
        # coroutine object per wait).
        self._park = core.TaskQueue()
        # The connection.
        self._sock = None
        self._closed = False
        self._dead = None  # why the connection ends, once it must
        self._up = False  # CONNACK accepted
        self._hello_sent = False
        self._writing = False  # a batch is part-written
        self._tail = None  # a value to write after the head in the output buffer
        self._b_pub = self._b_res = 0  # PUBLISHes in the batch being written
        self._start = self._up_at = self._last_rx = self._last_tx = 0
        self._ping_at = None  # when the outstanding PINGREQ was due
        self._ping_send = False
        self._rtask = self._wtask = None
        # For the page.
        self.state = "connecting"  # then "connected", "backoff"; "closed" after close()
        self.last_error = ""
        self.retry_ms = 0  # the current backoff's wait
        self.attempts = 0
        self.connects = 0
        self.disconnects = 0
        self.refused = 0  # CONNACKs with a refusal
        self.dropped_oversized = 0
        self.malformed = 0
        self.callback_errors = 0
        self.published = 0
        self.resent = 0
        self.received = 0
        self.stale = 0  # retained deliveries dropped
        self.sub_failures = 0
        self.errors = 0  # our own bugs, caught in run()

    # ---- the shell's side -------------------------------------------------------------------

    def publish(self, topic, payload, retain=False, qos=0):
        """Sets topic's latest value: sent when the socket takes it, replaced meanwhile by any
        newer one. payload: bytes (kept as given, not copied), bytearray, memoryview or str
        (encoded). A topic is found by the object given (str or bytes: use one kind per topic);
        a bytes topic is kept as given, a str one is kept as its encoded copy as well.
        Raises ValueError for a topic past SLOTS_MAX or not a topic name, and for a QoS other
        than 0 or 1."""
        if qos != 0 and qos != 1:
            raise ValueError("mqtt: publish at QoS 0 or 1")
        i = self._index.get(topic)
        if i is None:
            i = self._register(topic)
        if isinstance(payload, str):
            payload = payload.encode()
        len(payload)  # TypeError here, not in the writer
        self._vals[i] = payload
        f = self._flags[i]
        if not f & _DIRTY:
            self._dirty += 1
        self._flags[i] = f & _FLIGHT | _DIRTY | (_RETAIN if retain else 0) | (_QOS1 if qos else 0)
        self._wake()

    def waiting(self, topic):
        """True while topic's latest value has not yet gone into the output."""
        i = self._index.get(topic)
        return i is not None and bool(self._flags[i] & _DIRTY)

    def rename(self, topic, new):
        """Sends the next values of topic's slot under `new`; the slot is still found by
        `topic`. One slot for a sequence of topics of one value each (Home Assistant's
        discovery configs, paced), rather than a slot each."""
        self._topics[self._index[topic]] = _name(new, "publish")

    def lazy(self, key):
        """A slot whose topic and value the source makes when the writer takes it:
        source.topic(key) and source.payload(key), bytes each. The client keeps the key (a small
        int) and nothing else. QoS 0 only (a QoS 1 resend must repeat the value it sent).
        Returns the slot, for touch()."""
        return self._register(key)

    def touch(self, slot, retain=True):
        """A lazy slot's value has changed: it goes out when the socket takes it."""
        if self._vals[slot] is None:
            self._vals[slot] = 0  # has a value: sent again after every connect
        f = self._flags[slot]
        if not f & _DIRTY:
            self._dirty += 1
        self._flags[slot] = _DIRTY | (_RETAIN if retain else 0)
        self._wake()

    def _register(self, topic):
        t = topic if isinstance(topic, int) else _name(topic, "publish")
        if len(self._topics) >= SLOTS_MAX:
            raise ValueError("mqtt: publish %r: all %d topic slots are taken (SLOTS_MAX)" % (topic, SLOTS_MAX))
        i = len(self._topics)
        self._topics.append(t)
        self._vals.append(None)
        if not isinstance(topic, int):
            self._index[topic] = i
        return i

    def subscribe(self, topic, qos=0):
        """Subscribes to one exact topic at QoS 0 or 1, now and after every connect. Raises
        ValueError for a wildcard (naming it), a topic past SUBS_MAX or a QoS above 1."""
        if qos != 0 and qos != 1:
            raise ValueError("mqtt: subscribe at QoS 0 or 1")
        t = _name(topic, "subscribe")
        subs = self._subs
        for k in range(len(subs)):
            if subs[k] == t:
                if self._sub_qos[k] != qos:
                    self._sub_qos[k] = qos
                    self._sub_next = min(self._sub_next, k)
                    self._wake()
                return
        if len(subs) >= SUBS_MAX:
            raise ValueError("mqtt: subscribe %r: %d subscriptions already (SUBS_MAX)" % (topic, SUBS_MAX))
        self._sub_qos[len(subs)] = qos
        subs.append(t)
        self._wake()

    def close(self, disconnect=True):
        """Ends the connection and makes run() return within _TICK_MS. With disconnect, a
        DISCONNECT goes first when nothing is half-written (the broker then discards the will:
        publish your own last word before); without, the broker publishes the will."""
        if self._closed:
            return
        self._closed = True
        s = self._sock
        if disconnect and s is not None and self._up and not self._writing and self._dead is None:
            try:
                s.write(_DISCONNECT)
            except OSError:
                pass  # going anyway
        self._drop("closed")

    def stats(self):
        """What the page shows."""
        return {"state": self.state, "last_error": self.last_error, "retry_ms": self.retry_ms,
                "attempts": self.attempts, "connects": self.connects, "disconnects": self.disconnects,
                "refused": self.refused, "dropped_oversized": self.dropped_oversized, "malformed": self.malformed,
                "callback_errors": self.callback_errors, "published": self.published, "resent": self.resent,
                "received": self.received, "stale": self.stale, "sub_failures": self.sub_failures, "errors": self.errors,
                "in_flight": self.in_flight(), "topics": len(self._topics)}

    def in_flight(self):
        n = 0
        for e in range(_INFLIGHT_MAX):
            if self._fl_state[e] != _F_FREE:
                n += 1
        return n

    # ---- the supervisor ---------------------------------------------------------------------

    async def run(self):
        """Connects, keeps the connection, reconnects with backoff; returns after close(). Raises
        nothing but CancelledError."""
        level = _BACKOFF_FIRST_MS
        while not self._closed:
            self.state = "connecting"
            self.attempts += 1
            try:
                up = await self._session()
            except Exception as e:  # our bug, never the broker's doing: counted, and on we go
                self.errors += 1
                self.last_error = "internal: %r" % (e,)
                self._end()
                up = -1
            if self._closed:
                break
            if up >= self._ka // 2:
                level = _BACKOFF_FIRST_MS
            wait = backoff_ms(level, random.getrandbits(16))
            level = min(level * 2, _BACKOFF_MAX_MS)
            self.state = "backoff"
            self.retry_ms = wait
            end = ticks_add(ticks_ms(), wait)
            while not self._closed:
                left = ticks_diff(end, ticks_ms())
                if left <= 0:
                    break
                await asyncio.sleep_ms(min(left, _TICK_MS))
        self.state = "closed"

    async def _session(self):
        """One connection, from its address to its end: how long it was up (ms) after its
        CONNACK, or -1."""
        self._dead = None
        sock = None
        try:
            if self._resolve is None:
                ai = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0]
                family, addr = ai[0], ai[-1]
            else:
                family, addr = socket.AF_INET, self._resolve(self.host, self.port)
                if hasattr(addr, "send"):
                    addr = await addr
                if addr is None:
                    self.last_error = "resolve: %s not known yet" % self.host
                    return -1
        except Exception as e:  # OSError, or whatever the shell's resolver raised
            self.last_error = "resolve %s: %s" % (self.host, e)
            return -1
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(addr)
            except OSError as e:
                if e.errno != EINPROGRESS:
                    raise
            if self._tls:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
                sock.setblocking(False)
        except Exception as e:
            if sock is not None:
                sock.close()
            self.last_error = "connect: %s" % (e,)
            return -1
        self._begin(sock)
        try:
            while self._dead is None:
                await asyncio.sleep_ms(_TICK_MS)
                self._check(ticks_ms())
        finally:
            up = self._end()
        return up

    def _begin(self, sock):
        now = ticks_ms()
        self._sock = sock
        self._up = self._hello_sent = self._writing = self._ping_send = False
        self._ping_at = self._tail = None
        self._start = self._last_rx = self._last_tx = now  # type: ignore[assignment]  # ticks: opaque in the stubs, 0 here
        self._nacks = self._b_pub = self._b_res = 0
        self._rd.reset()
        self._wtask = core.create_task(self._writer(sock))
        self._rtask = None

    def _end(self):
        for t in (self._rtask, self._wtask):
            if t is not None and not t.done():
                t.cancel()  # off the I/O queue at once: the socket can be closed
        self._rtask = self._wtask = None
        up = -1
        if self._up:
            up = ticks_diff(ticks_ms(), self._up_at)
            self.disconnects += 1
        self._up = self._writing = self._ping_send = False
        self._tail = self._ping_at = None
        self._nacks = 0
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        return up

    def _check(self, now):
        if self._closed:
            self._drop("closed")
            return
        ka = self._ka
        if not self._up:
            limit = min(_CONNECT_MS, ka)
            if ticks_diff(now, self._start) > limit:
                self._drop("no CONNACK within %d ms" % limit)
            return
        p = self._ping_at
        if p is not None:
            if ticks_diff(now, p) > ka:
                self._drop("no PINGRESP within the keepalive (%d s)" % (ka // 1000))
                return
        elif ticks_diff(now, self._last_tx) >= ka // 2 or ticks_diff(now, self._last_rx) >= ka // 2:
            # Idle for half a keepalive, or nothing heard for as long (QoS 0 traffic out gets no
            # answer): the broker must answer a PINGREQ within the keepalive.
            self._ping_at = now
            self._ping_send = True
            self._wake()
        for e in range(_INFLIGHT_MAX):
            if self._fl_state[e] == _F_WAIT and ticks_diff(now, self._fl_at[e]) >= _RESEND_MS:
                self._fl_state[e] = _F_RESEND
                self._wake()

    def _drop(self, what, err=None):
        if self._dead is None:
            self._dead = what if err is None else "%s: %s" % (what, err)
            if what != "closed":
                self.last_error = self._dead

    def _wake(self):
        q = self._park
        while q.peek():
            core._task_queue.push(q.pop())

    # ---- the writer -------------------------------------------------------------------------

    def _writer(self, sock):
        # A generator, run as a task: its waits are bare yields into asyncio's queues, so that a
        # wait allocates nothing.
        out = self._out
        try:
            yield core._io_queue.queue_write(sock)  # connected, or failed: the write says which
            while True:
                n = self._batch(out)
                tail = self._tail
                if not n and tail is None:
                    self._park.push(core.cur_task)
                    core.cur_task.data = self._park
                    yield
                    continue
                self._writing = True
                off = 0
                while off < n:
                    w = sock.write(out, off, n - off)
                    if w:
                        off += w
                    else:  # the socket takes nothing now: the rest when it is writable
                        yield core._io_queue.queue_write(sock)
                if tail is not None:
                    off, n = 0, len(tail)
                    while off < n:
                        w = sock.write(tail, off, n - off)
                        if w:
                            off += w
                        else:
                            yield core._io_queue.queue_write(sock)
                    self._tail = None
                self._writing = False
                self._last_tx = ticks_ms()  # type: ignore[assignment]
                self.published += self._b_pub
                self.resent += self._b_res
                self._b_pub = self._b_res = 0
                if self._rtask is None:  # CONNECT is out (and a TLS handshake done): read
                    self._rtask = core.create_task(self._reader(sock))
        except OSError as e:
            self._drop("write" if self._up else "connect", e)
        except Exception as e:  # our bug: the connection ends, and run() goes on
            self.errors += 1
            self._drop("internal (writer)", repr(e))

    def _batch(self, out):
        """The next frames into out: their length; a value too long for out is left in _tail."""
        if self._dead is not None:
            return 0
        if not self._hello_sent:
            self._hello_sent = True
            self._tail = self._hello
            return 0
        if not self._up:
            return 0
        i = 0
        for k in range(self._nacks):  # at most 32 bytes: they always fit
            i = packet.puback(out, i, self._acks[k])
        self._nacks = 0
        if self._ping_send:
            self._ping_send = False
            i = packet.pingreq(out, i)
        subs = self._subs
        while self._sub_next < len(subs):
            k = self._sub_next
            t = subs[k]
            if i + 8 + len(t) > _OUT:
                return i
            self._sub_pid[k] = self._next_pid()
            i = packet.subscribe(out, i, self._sub_pid[k], t, self._sub_qos[k])
            self._sub_next = k + 1
        now = ticks_ms()
        for e in range(_INFLIGHT_MAX):
            if self._fl_state[e] == _F_RESEND:
                j = self._put(out, i, self._topics[self._fl_slot[e]], self._fl_val[e], 1, self._fl_ret[e], True,
                              self._fl_pid[e])
                if j < 0:
                    return i
                self._fl_state[e] = _F_WAIT
                self._fl_at[e] = now  # type: ignore[call-overload]
                self._b_res += 1
                i = j
                if self._tail is not None:
                    return i
        return self._slots(out, i, now)

    def _slots(self, out, i, now):
        # The dirty slots' values, round-robin from where the last batch stopped.
        flags, n = self._flags, len(self._topics)
        k = self._cursor
        seen = 0
        while self._dirty and seen < n:
            if k >= n:
                k = 0
            f = flags[k]
            if f & _DIRTY and not f & _FLIGHT:
                e = -1
                if f & _QOS1:
                    e = self._free_entry()
                    if e < 0:  # every QoS 1 place taken: it waits in its slot
                        k += 1
                        seen += 1
                        continue
                pid = self._next_pid() if e >= 0 else 0
                t = self._topics[k]
                if isinstance(t, int):  # a lazy slot: made now, the latest there is
                    v = self._source.payload(t)
                    t = self._source.topic(t)
                else:
                    v = self._vals[k]
                j = self._put(out, i, t, v, 1 if e >= 0 else 0, f & _RETAIN, False, pid)
                if j < 0:
                    break  # the next batch starts with it
                flags[k] = f & ~_DIRTY | (_FLIGHT if e >= 0 else 0)
                self._dirty -= 1
                if e >= 0:
                    self._fl_state[e] = _F_WAIT
                    self._fl_slot[e] = k
                    self._fl_ret[e] = f & _RETAIN
                    self._fl_pid[e] = pid
                    self._fl_at[e] = now
                    self._fl_val[e] = v
                self._b_pub += 1
                i = j
                if self._tail is not None:
                    k += 1
                    break
            k += 1
            seen += 1
        self._cursor = k
        return i

    def _put(self, out, i, topic, val, qos, retain, dup, pid):
        # One PUBLISH at out[i:]: the index after it, or -1 when it must start the next batch.
        size = len(val)
        if i + packet.publish_size(len(topic), size, qos) <= _OUT:
            j = packet.publish_head(out, i, topic, size, qos, retain, dup, pid)
            out[j:j + size] = val
            return j + size
        if i:
            return -1
        self._tail = val
        return packet.publish_head(out, 0, topic, size, qos, retain, dup, pid)

    def _free_entry(self):
        for e in range(_INFLIGHT_MAX):
            if self._fl_state[e] == _F_FREE:
                return e
        return -1

    def _next_pid(self):
        while True:
            p = self._pid + 1 if self._pid < _PID_MAX else 1
            self._pid = p
            for e in range(_INFLIGHT_MAX):
                if self._fl_state[e] != _F_FREE and self._fl_pid[e] == p:
                    break
            else:
                return p

    # ---- the reader -------------------------------------------------------------------------

    def _reader(self, sock):
        rd, rx, rxv = self._rd, self._rx, self._rxv
        try:
            while True:
                n = sock.readinto(rx)
                if n is None:  # nothing there (EAGAIN)
                    yield core._io_queue.queue_read(sock)
                    continue
                if not n:
                    self._drop("the broker closed the connection")
                    return
                self._last_rx = ticks_ms()  # type: ignore[assignment]
                i = 0
                while i < n:
                    i = rd.feed(rxv, i, n)
                    ev = rd.event
                    if not ev:
                        continue
                    if ev == packet.OVERSIZED:
                        self.dropped_oversized += 1
                        self._drop("a packet of %d bytes, over IN_MAX (%d): dropped" % (rd.size, packet.IN_MAX))
                        return
                    if ev == packet.MALFORMED or not self._packet(ev):
                        if not self._dead:
                            self.malformed += 1
                            self._drop("a malformed packet (type %d)" % rd.kind)
                        return
                    while self._nacks >= _ACKS:  # read on when the writer has sent the PUBACKs
                        self._wake()
                        yield from asyncio.sleep_ms(_TICK_MS // 10)  # type: ignore[misc]  # a generator task
        except OSError as e:
            self._drop("read", e)
        except Exception as e:  # our bug (a callback's errors are caught where it is called)
            self.errors += 1
            self._drop("internal (reader)", repr(e))

    def _packet(self, ev):
        # One packet in: False when it breaks the protocol (the connection must end).
        rd = self._rd
        if not self._up:
            if ev != packet.CONNACK:
                return False
            if rd.code:
                self.refused += 1
                t = packet.CONNACK_TEXT
                self._drop("CONNACK refused: %d (%s)" % (rd.code, t[rd.code] if rd.code < len(t) else "?"))
                return False
            self._connected()
            return True
        if ev == packet.PUBLISH:
            return self._incoming(rd)
        if ev == packet.PUBACK:
            self._acked(rd.pid)
            return True
        if ev == packet.SUBACK:
            for k in range(self._sub_next):
                if self._sub_pid[k] == rd.pid:
                    self._sub_pid[k] = 0
                    if rd.buf[2] == packet.SUBACK_FAILURE:
                        self.sub_failures += 1
                        self.last_error = "SUBACK refused %r" % (self._subs[k],)
            return True
        if ev == packet.PINGRESP:
            self._ping_at = None
            return True
        return False  # a second CONNACK

    def _connected(self):
        self._up = True
        self._up_at = ticks_ms()  # type: ignore[assignment]
        self.connects += 1
        self.state = "connected"
        self._sub_next = 0
        # Every topic's latest value goes out again on this connection.
        flags, vals = self._flags, self._vals
        d = 0
        for k in range(len(self._topics)):
            f = flags[k]
            if vals[k] is not None and not f & _FLIGHT:
                f |= _DIRTY
                flags[k] = f
            if f & _DIRTY:
                d += 1
        self._dirty = d
        for e in range(_INFLIGHT_MAX):
            if self._fl_state[e] != _F_FREE:
                self._fl_state[e] = _F_RESEND
        self._wake()

    def _incoming(self, rd):
        if rd.qos > 1:
            return False  # we subscribe at QoS 1 at most (3.8.4: the broker may not exceed it)
        inv = self._inv
        topic = bytes(inv[2:rd.topic_end])
        self.received += 1
        cb = self.on_message
        if rd.retain and not self._retained:
            self.stale += 1
        elif cb is not None:
            payload = bytes(inv[rd.payload:rd.size])
            try:
                cb(topic, payload)
            except Exception as e:  # the callback's fault: counted, the client goes on
                self.callback_errors += 1
                self.last_error = "on_message: %r" % (e,)
        if rd.qos:
            self._acks[self._nacks] = rd.pid
            self._nacks += 1
            self._wake()
        return True

    def _acked(self, pid):
        for e in range(_INFLIGHT_MAX):
            if self._fl_state[e] != _F_FREE and self._fl_pid[e] == pid:
                s = self._fl_slot[e]
                self._fl_state[e] = _F_FREE
                self._fl_val[e] = None
                self._flags[s] &= ~_FLIGHT
                if self._flags[s] & _DIRTY:
                    self._wake()
                return
        # a PUBACK for nothing we wait for (one of a resent pair): nothing to do
