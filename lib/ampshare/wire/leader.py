# The leader's side of the wire (protocol.py has the layout): it reads HELLO and STATE and
# sends PAIR and COMMAND.
import struct

from ampshare.wire import frame as P


def read_hello(data):
    if len(data) < P.HELLO_LEN:
        raise P.Rejected(P.R_SHORT)
    uid, firmware, nameplate, phases, flags = struct.unpack_from(P.FMT_HELLO, data, P.HEAD_LEN)
    if phases not in (1, 3):
        raise P.Rejected(P.R_FIELD)
    return uid, firmware, nameplate * P.DA, phases, flags


def pair(code, uid, nonce, epoch, charger, charger_id, key):
    """The follower's key, wrapped under its label code, and its charger id."""
    ident = charger_id.encode()
    if len(ident) > P.ID_MAX:
        raise ValueError("charger id longer than %d bytes" % P.ID_MAX)
    stream = P.keystream(code, nonce, uid)
    wrapped = bytes(key[i] ^ stream[i] for i in range(P.KEY_LEN))
    return P.sealed(P.pairing_key(code), P.FMT_PAIR, P.PAIR, uid, nonce, epoch, charger, len(ident), ident, wrapped)


def command(key, uid, epoch, seq, f_epoch, current_ma, fallback_ma, phases, flags=0):
    return P.sealed(key, P.FMT_COMMAND, P.COMMAND, uid, epoch, seq, f_epoch, P.da(current_ma), P.da(fallback_ma),
                  phases, flags)


def read_state(data, key):
    """A dict-free tuple: (uid, f_epoch, seq, l_epoch, pilot, errors, applied mA, fallback mA,
    (m1, m2, m3) mA, phases, flags, energy Wh, uptime s); tag checked."""
    f = P.opened(data, P.STATE_LEN, key, P.FMT_STATE)
    if f[4] not in b"ABCDEF" or f[11] not in (0, 1, 2, 3):
        raise P.Rejected(P.R_FIELD)
    return (f[0], f[1], f[2], f[3], f[4], f[5], f[6] * P.DA, f[7] * P.DA,
            (f[8] * P.CA, f[9] * P.CA, f[10] * P.CA), f[11], f[12], f[13], f[14])
