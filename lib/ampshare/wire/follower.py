# The follower's side of the wire (protocol.py has the layout): it sends HELLO and STATE and
# reads PAIR and COMMAND.
import struct

from ampshare.wire import frame as P


def hello(uid, firmware, nameplate_ma, phases, flags):
    """An announcement: no authority, it only shows the unit on the leader's page."""
    return struct.pack(P.HEAD, P.MAGIC, P.VERSION, P.HELLO) + struct.pack(
        P.FMT_HELLO, uid, firmware, P.da(nameplate_ma), phases, flags)


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


def state(key, uid, f_epoch, seq, l_epoch, pilot, errors, applied_ma, fallback_ma, meas_ma,
          phases, flags, energy_wh, uptime_s):
    return P.sealed(key, P.FMT_STATE, P.STATE, uid, f_epoch, seq, l_epoch, pilot, errors, P.da(applied_ma),
                  P.da(fallback_ma), P.ca(meas_ma[0]), P.ca(meas_ma[1]), P.ca(meas_ma[2]), phases, flags,
                  energy_wh, uptime_s)
