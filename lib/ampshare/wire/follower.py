# The follower's side of the wire (frame.py has the layout), around its core
# (core/follower.py): it opens PAIRs and COMMANDs, checks them (tag, its own boot, freshness),
# hands the core their values, and sends HELLOs and STATEs. Sans-I/O: datagrams in and out.
import struct
from array import array

from ampshare.core import link
from ampshare.core.follower import HELLO, REPORT
from ampshare.core.ints import count
from ampshare.wire import frame as P

FIRMWARE = 1  # in every HELLO: the page shows which units run what


def hello(uid, firmware, nameplate_ma, phases, flags, claim=""):
    """An announcement: no authority, it only shows the unit on the leader's page, with the
    charger id it was paired as (`claim`, empty while unpaired)."""
    ident = claim.encode()
    return struct.pack(P.HEAD, P.MAGIC, P.VERSION, P.HELLO) + struct.pack(
        P.FMT_HELLO, uid, firmware, P.da(nameplate_ma), phases, flags) + struct.pack(P.FMT_CLAIM, len(ident), ident)


def read_pair(data, code):
    """(uid, nonce, epoch, charger index, charger id, key) from an authentic PAIR."""
    uid, nonce, epoch, charger, n, ident, wrapped = P.opened(data, P.PAIR_LEN, P.pairing_key(code), P.FMT_PAIR)
    if n > P.ID_MAX:
        raise P.Rejected(P.R_FIELD)
    stream = P.keystream(code, nonce, uid)
    key = bytes(wrapped[i] ^ stream[i] for i in range(P.KEY_LEN))
    return uid, nonce, epoch, charger, ident[:n].decode(), key


def read_command(data, key):
    """(uid, epoch, seq, f_epoch, current mA, fallback mA, phases, flags); tag checked."""
    uid, epoch, seq, f_epoch, cur, fb, phases, flags = P.opened(data, P.COMMAND_LEN, key, P.FMT_COMMAND)
    if phases not in (1, 3) or fb > cur:
        raise P.Rejected(P.R_FIELD)
    return uid, epoch, seq, f_epoch, cur * P.DA, fb * P.DA, phases, flags


_STATE_FMT = P.HEAD + P.FMT_STATE[1:]  # header and body of a STATE, in one


def state(key, uid, f_epoch, seq, l_epoch, pilot, errors, applied_ma, fallback_ma, meas_ma,
          phases, flags, energy_wh, uptime_s, l_seq):
    """A STATE; (l_epoch, l_seq) name the last COMMAND accepted, whose values it reflects.
    Packed and sealed in one buffer: a datagram a second costs it and the HMAC's objects."""
    buf = bytearray(P.STATE_LEN)
    struct.pack_into(_STATE_FMT, buf, 0, P.MAGIC, P.VERSION, P.STATE, uid, f_epoch, seq, l_epoch, pilot, errors,
                     P.da(applied_ma), P.da(fallback_ma), P.ca(meas_ma[0]), P.ca(meas_ma[1]), P.ca(meas_ma[2]),
                     phases, flags, energy_wh, uptime_s, l_seq)
    key.seal(buf, memoryview(buf)[:P.STATE_LEN - P.TAG_LEN])
    return buf


class FollowerPort:
    """A follower core on the wire: its uid, label code and key, its boot epoch and report
    numbers, what it accepted from the leader, and the counts of what it dropped."""

    def __init__(self, core, uid, code, f_epoch, key=None, charger=-1):
        self.core = core
        self.uid = bytes(uid)
        self.code = code  # the pairing code on the label
        self.f_epoch = f_epoch  # this boot's number, kept on flash by the shell
        self.key = P.Key(key) if key else None
        core.paired = self.key is not None
        self.charger = charger
        self.charger_id = ""
        self.fresh = P.Freshness()
        self.rejected = array("i", [0] * len(P.REASONS))
        self.accepted = 0
        self.l_epoch = 0  # the last COMMAND accepted: echoed in every STATE
        self.l_seq = 0
        self.seq = 0
        self.paired_event = False  # set when a PAIR was accepted: the shell saves key and id
        self.epoch_event = False  # set when the sequence ran out: the shell saves f_epoch

    def receive(self, now_ms, data):
        """A datagram from the network. Returns True when it was accepted."""
        try:
            mtype = P.header(data)
            if not P.is_uid(data, self.uid):
                raise P.Rejected(P.R_PEER)
            if mtype == P.COMMAND:
                self._command(now_ms, data)
            elif mtype == P.PAIR:
                self._pair(data)
            else:
                raise P.Rejected(P.R_TYPE)
        except P.Rejected as e:
            self.rejected[e.reason] = count(self.rejected[e.reason])
            return False
        self.accepted = count(self.accepted)
        return True

    def _command(self, now_ms, data):
        if self.key is None:
            raise P.Rejected(P.R_PEER)
        _, l_epoch, seq, f_epoch, cur, fb, phases, flags = read_command(data, self.key)
        if f_epoch != self.f_epoch:
            raise P.Rejected(P.R_EPOCH)  # addressed to an earlier boot of ours
        self.fresh.admit(0, l_epoch, seq)
        self.l_epoch = l_epoch
        self.l_seq = seq
        self.core.command(now_ms, cur, fb, phases, flags)

    def _pair(self, data):
        if self.key is not None and not self.core.window_open:
            raise P.Rejected(P.R_WINDOW)
        _, _, l_epoch, charger, ident, key = read_pair(data, self.code)
        if self.key is not None and key == self.key.raw():
            # A PAIR we already hold, replayed: taking it again would forget which COMMANDs
            # were already seen.
            raise P.Rejected(P.R_REPLAY)
        self.key = P.Key(key)
        self.charger = charger
        self.charger_id = ident
        self.fresh.forget(0)
        self.l_epoch = self.l_seq = 0  # no COMMAND under this key yet
        self.core.paired_now()
        self.paired_event = True

    def tick(self, now_ms):
        """The core's timers; returns a datagram to send to the leader, or None."""
        what = self.core.tick(now_ms)
        if what == REPORT:
            return self.report()
        if what == HELLO:
            return self.hello()
        return None

    def hello(self):
        f = self.core
        flags = (link.CAN_SWITCH if f.can_switch else 0) | (link.PAIRED if self.key else 0)
        return hello(self.uid, FIRMWARE, f.nameplate, f.phases, flags, self.charger_id if self.key else "")

    def report(self):
        if self.seq >= P.SEQ_MAX:
            self.f_epoch += 1
            self.seq = 0
            self.epoch_event = True
        self.seq += 1
        f = self.core
        f.reported()
        return state(self.key, self.uid, self.f_epoch, self.seq, self.l_epoch, f.state, f.errors, f.held(),
                     f.held_fallback(), f.meas, f.in_use(), f.status_flags(), f.energy_wh, f.uptime_s, self.l_seq)
