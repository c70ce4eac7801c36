"""A second implementation of docs/protocol.md in CPython, to craft and check datagrams."""
import hashlib
import hmac
import struct

MAGIC = b"\xa5\x53"
HELLO, PAIR, COMMAND, STATE = 1, 2, 3, 4


def head(mtype, version=1):
    return MAGIC + bytes([version, mtype])


def tag(key, body):
    return hmac.new(key, body, hashlib.sha256).digest()[:16]


def hello(uid, firmware=1, nameplate_da=320, phases=3, flags=0, claim=None):
    """claim None: the 16-byte HELLO without a claimed charger id."""
    body = head(HELLO) + uid + struct.pack("<HHBB", firmware, nameplate_da, phases, flags)
    if claim is None:
        return body
    ident = claim.encode() if isinstance(claim, str) else claim
    return body + struct.pack("<B24s", len(ident), ident)


def read_hello(data):
    uid = data[4:10]
    firmware, nameplate_da, phases, flags, n = struct.unpack_from("<HHBBB", data, 10)
    assert len(data) == 41 and data[2] == 1 and data[3] == HELLO
    return {"uid": uid, "firmware": firmware, "nameplate_da": nameplate_da, "phases": phases,
            "flags": flags, "claim": data[17:17 + n].decode()}


def command(key, uid, epoch, seq, f_epoch, current_da, fallback_da, phases=3, flags=0, extra=b"", version=1):
    body = head(COMMAND, version) + uid + struct.pack("<IIIHHBB", epoch, seq, f_epoch, current_da,
                                                      fallback_da, phases, flags) + extra
    return body + tag(key, body)


def state(key, uid, f_epoch, seq, l_epoch=1, pilot=b"C", errors=0, applied_da=0, fallback_da=0,
          meas_ca=(0, 0, 0), phases=3, flags=0, energy=0, uptime=0, l_seq=0, extra=b""):
    body = head(STATE) + uid + struct.pack("<IIIBBHHHHHBBIII", f_epoch, seq, l_epoch, pilot[0], errors,
                                           applied_da, fallback_da, *meas_ca, phases, flags, energy, uptime,
                                           l_seq)
    body += extra
    return body + tag(key, body)


def pair(code, uid, nonce, epoch, charger, charger_id, key):
    stream = hashlib.sha256(b"ampshare-wrap" + code + nonce + uid).digest()
    wrapped = bytes(a ^ b for a, b in zip(key, stream))
    ident = charger_id.encode()
    body = head(PAIR) + uid + nonce + struct.pack("<IBB", epoch, charger, len(ident)) + ident.ljust(24, b"\0") + wrapped
    return body + tag(hashlib.sha256(b"ampshare-pair" + code).digest(), body)


def read_state(data, key):
    assert data[:4] == head(STATE)
    assert tag(key, data[:-16]) == data[-16:], "STATE tag"
    f = struct.unpack_from("<6sIIIBBHHHHHBBIII", data, 4)
    return dict(uid=f[0], f_epoch=f[1], seq=f[2], l_epoch=f[3], pilot=chr(f[4]), errors=f[5],
                applied_da=f[6], fallback_da=f[7], meas_ca=f[8:11], phases=f[11], flags=f[12],
                energy=f[13], uptime=f[14], l_seq=f[15])


def read_command(data, key):
    assert data[:4] == head(COMMAND)
    assert tag(key, data[:-16]) == data[-16:], "COMMAND tag"
    f = struct.unpack_from("<6sIIIHHBB", data, 4)
    return dict(uid=f[0], epoch=f[1], seq=f[2], f_epoch=f[3], current_da=f[4], fallback_da=f[5],
                phases=f[6], flags=f[7])
