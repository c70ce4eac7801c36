# The leader's side of the wire (frame.py has the layout), around its core (core/leader.py):
# it opens HELLOs and STATEs, checks them (tag, freshness, range), hands the core their values,
# and seals the core's COMMANDs and the PAIRs. Sans-I/O: datagrams in, datagrams out.
#
# A STATE is read where it lies and a COMMAND sealed into a buffer made once: the only heap
# objects a datagram costs are the HMAC's (hashlib makes its hash objects and digests, and a
# view of the body to hash).
import struct
from array import array

from micropython import const

from ampshare.core.ints import count
from ampshare.core.link import UNMEASURED
from ampshare.core.pilot import LETTERS
from ampshare.wire import frame as F

_DISCOVERED_MAX = const(16)  # unpaired units listed on the page; bounds RAM against a flood
# Where a STATE's fields lie (docs/protocol.md): the uid's last byte at 9; follower epoch and
# sequence at 10 and 14; the pilot at 22; what it holds and its fallback at 24 and 26; L1-L3
# measured from 28; phases in use, flags and energy at 34, 35 and 36; the last COMMAND it
# accepted at 18 (epoch) and 44.
_UID_LAST = const(9)
_UID_END = const(5)  # that byte's index in a uid
_F_EPOCH = const(10)
_L_EPOCH = const(18)
_L_SEQ = const(44)
_PILOT = const(22)
_APPLIED = const(24)
_MEAS = const(28)
_PHASES = const(34)
COMMAND_FMT = F.HEAD + F.FMT_COMMAND[1:]  # header and body of a COMMAND, in one


def read_hello(data):
    if len(data) < F.HELLO_LEN:
        raise F.Rejected(F.R_SHORT)
    uid, firmware, nameplate, phases, flags = struct.unpack_from(F.FMT_HELLO, data, F.HEAD_LEN)
    if phases not in (1, 3):
        raise F.Rejected(F.R_FIELD)
    return uid, firmware, nameplate * F.DA, phases, flags, _claim(data)


def _claim(data):
    # The charger id a paired unit says it is: "" from an unpaired unit or a shorter HELLO.
    if len(data) < F.CLAIM_LEN:
        return ""
    n, ident = struct.unpack_from(F.FMT_CLAIM, data, F.HELLO_LEN)
    if n > F.ID_MAX:
        raise F.Rejected(F.R_FIELD)
    try:
        return ident[:n].decode()
    except UnicodeError:
        raise F.Rejected(F.R_FIELD)


def pair(code, uid, nonce, epoch, charger, charger_id, key):
    """The follower's key, wrapped under its label code, and its charger id."""
    ident = charger_id.encode()
    if len(ident) > F.ID_MAX:
        raise ValueError("charger id longer than %d bytes" % F.ID_MAX)
    stream = F.keystream(code, nonce, uid)
    wrapped = bytes(key[i] ^ stream[i] for i in range(F.KEY_LEN))
    return F.sealed(F.pairing_key(code), F.FMT_PAIR, F.PAIR, uid, nonce, epoch, charger, len(ident), ident, wrapped)


def seal_command(buf, body, key, uid, epoch, seq, f_epoch, current_ma, fallback_ma, phases, flags=0):
    """A COMMAND sealed into buf (COMMAND_LEN bytes; body: a view of its first bytes)."""
    struct.pack_into(COMMAND_FMT, buf, 0, F.MAGIC, F.VERSION, F.COMMAND, uid, epoch, seq, f_epoch,
                     F.da(current_ma), F.da(fallback_ma), phases, flags)
    key.seal(buf, body)
    return buf


class LeaderPort:
    """The leader core on the wire: the followers' uids and keys, what was accepted from each
    (their freshness), this boot's epoch and COMMAND numbers, and the counts of what was
    dropped."""

    def __init__(self, core, l_epoch):
        nc = core.nc
        self.core = core
        self.l_epoch = l_epoch
        self.seq = 0
        self.uid = [None] * nc  # type: list
        self.keys = F.Keys(nc)  # a follower is paired when its uid is set
        self.fresh = F.Freshness(nc)
        self.rejected = array("i", [0] * len(F.REASONS))
        self.accepted = 0
        self.last_from = -1  # the charger of the last accepted STATE: the shell learns its address
        self.hellos = 0
        self.discovered = []  # (uid, firmware, nameplate mA, phases, flags, claim) from HELLOs
        self.hello_flags = None  # the flags of the HELLO just read (None: it was refused)
        self._meas = array("i", [0, 0, 0])
        # The first COMMAND after the core lowered what a follower may hold (core.lowered): a
        # STATE confirms the decrease only once it echoes that COMMAND or a later one. An
        # earlier report may show a low value by chance (its car asleep, an offer held back)
        # while a higher COMMAND is still on its way to it.
        self._need_epoch = array("I", bytes(4 * nc))
        self._need_seq = array("I", bytes(4 * nc))
        self._buf = bytearray(F.COMMAND_LEN)
        self._body = memoryview(self._buf)[:F.COMMAND_LEN - F.TAG_LEN]
        self._send = None
        self._out = []
        self._cmd = self._command  # bound once: a bound method made per tick is heap garbage

    def add_follower(self, c, uid, key):
        self.uid[c] = bytes(uid)
        self.keys.set(c, key)
        self.fresh.forget(c)
        self.core.paired_unit(c)

    def remove_follower(self, c):
        """Charger c's unit is unpaired: its reports are refused from now on (once the core
        has it stopped: core.stopped)."""
        self.uid[c] = None
        self.keys.set(c, bytes(F.KEY_LEN))
        self.fresh.forget(c)
        self.core.forget(c)

    def pair(self, c, uid, code, nonce, key):
        """The PAIR datagram that gives follower `uid` its key and charger; it is adopted.
        The same unit and key again (a follower that lost its key) keeps what was accepted
        from it: a HELLO is unauthenticated, and must not reopen the door to replays."""
        if self.uid[c] != uid or self.keys.raw(c) != key:
            self.add_follower(c, uid, key)
        return pair(code, uid, nonce, self.l_epoch, c, self.core.site.charger_ids[c], key)

    # ---- in ---------------------------------------------------------------------------------

    def receive(self, now_ms, data):
        """A datagram from a follower. Returns True when accepted."""
        self.hello_flags = None
        try:
            mtype = F.header(data)
            if mtype == F.HELLO:
                self._hello(data)
                return False  # carries no authority: nothing acted upon
            if mtype != F.STATE:
                raise F.Rejected(F.R_TYPE)
            self._state(now_ms, data)
        except F.Rejected as e:
            self.rejected[e.reason] = count(self.rejected[e.reason])
            return False
        self.accepted = count(self.accepted)
        return True

    def _hello(self, data):
        # Remembered for the commissioning page; a full list forgets its oldest entry.
        found = read_hello(data)
        self.hello_flags = found[4]  # the last HELLO's, for whoever acts on it now
        self.hellos = count(self.hellos)
        for i, seen in enumerate(self.discovered):
            if seen[0] == found[0]:
                self.discovered[i] = found
                return
        if len(self.discovered) >= _DISCOVERED_MAX:
            self.discovered.pop(0)
        self.discovered.append(found)

    def flags_of(self, uid):
        """The HELLO flags a unit last said (core/link.py), None for a unit not in the list."""
        for seen in self.discovered:
            if seen[0] == uid:
                return seen[4]
        return None

    def _charger_of(self, data):
        if len(data) < F.HEAD_LEN + F.UID_LEN:
            raise F.Rejected(F.R_SHORT)
        last = data[_UID_LAST]
        for c in range(self.core.nc):
            u = self.uid[c]
            # The last byte first: the units of one make share the first three (the maker's
            # OUI), so a whole comparison with each of 64 would mostly find out late.
            if u is not None and u[_UID_END] == last and F.is_uid(data, u):
                return c
        raise F.Rejected(F.R_PEER)

    def _state(self, now_ms, data):
        c = self._charger_of(data)
        if len(data) < F.STATE_LEN:
            raise F.Rejected(F.R_SHORT)
        self.keys.at(c).check(data)
        letter, phases = data[_PILOT], data[_PHASES]
        if letter not in LETTERS or phases > 3:
            raise F.Rejected(F.R_FIELD)
        u16, u32 = F.u16, F.u32
        f_epoch = u32(data, _F_EPOCH)
        self.fresh.admit(c, f_epoch, u32(data, _F_EPOCH + 4))
        self.last_from = c
        meas = self._meas
        flags = data[_PHASES + 1]
        for k in range(3):
            # -1: the core's "unmeasured" (a unit that says it measures nothing).
            meas[k] = -1 if flags & UNMEASURED else u16(data, _MEAS + 2 * k) * F.CA
        self.core.state(now_ms, c, f_epoch, letter, u16(data, _APPLIED) * F.DA, u16(data, _APPLIED + 2) * F.DA,
                        meas, flags, u32(data, _PHASES + 2), self._reflects(c, data))

    def _reflects(self, c, data):
        if self.core.lowered[c]:
            return False  # lowered, and not yet sent
        e, need = F.u32(data, _L_EPOCH), self._need_epoch[c]
        return e > need or (e == need and F.u32(data, _L_SEQ) >= self._need_seq[c])

    # ---- out --------------------------------------------------------------------------------

    def tick(self, now_ms, send=None):
        """The core's timers and allocation. Returns [(charger, datagram), ...], or hands each
        COMMAND to send(charger, datagram) as it is sealed: the datagram is this port's one
        buffer, valid until the next, so a leader of 64 followers never holds 64 at once."""
        self._send = send
        out = self._out
        del out[:]
        self.core.tick(now_ms, self._cmd)
        return out

    def _command(self, c, current, fallback, phases, flags, lowered):
        if self.seq >= F.SEQ_MAX:
            self.l_epoch += 1
            self.seq = 0
        self.seq += 1
        if lowered:
            self._need_epoch[c] = self.l_epoch
            self._need_seq[c] = self.seq
        buf = seal_command(self._buf, self._body, self.keys.at(c), self.uid[c], self.l_epoch, self.seq,
                           self.core.f_epoch[c], current, fallback, phases, flags)
        if self._send is not None:
            self._send(c, buf)
        else:
            self._out.append((c, bytes(buf)))
