# Who may change the site: one admin password, sessions as random tokens in RAM, and a brake
# on guessing. Sans-I/O: the shell saves what record() gives and passes now_ms in.
import hashlib
import os
from binascii import hexlify

from micropython import const

from ampshare.core.clock import ticks_add, ticks_diff

# A password of fewer characters is refused: the page is reachable by anyone on the site's
# network or the leader's access point.
_PASSWORD_MIN = const(8)
_PASSWORD_MAX = const(64)  # bounds what a login hashes
# Hashing rounds: enough to make a copied flash costly to brute-force, few enough that a
# login holds the event loop for a few milliseconds on an ESP32 (SHA-256 in hardware).
_ROUNDS = const(256)
_SESSIONS_MAX = const(4)  # a phone and a laptop or two; the oldest is logged out beyond
_SESSION_MS = const(3_600_000)  # an hour of no use logs a session out
# After _FAILS_FREE wrong passwords in a row, each further attempt waits _LOCK_MS, doubling
# up to _LOCK_MAX_MS: ten guesses a minute at first, one every 8.5 minutes soon after.
_FAILS_FREE = const(5)
_LOCK_MS = const(2_000)
_LOCK_MAX_MS = const(512_000)
_TOKEN_LEN = const(16)


class Refused(Exception):
    def __init__(self, reason, retry_ms=0):
        super().__init__(reason)
        self.reason = reason
        self.retry_ms = retry_ms


def _hash(salt, password):
    h = hashlib.sha256(salt + password).digest()
    for _ in range(_ROUNDS):
        h = hashlib.sha256(h + salt).digest()
    return h


def _same(a, b):
    # Constant time: no early exit on the first difference.
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


class Auth:
    """saved: {"salt": hex, "hash": hex} or None (no password set yet: the label code logs
    in once, and the session may only set a password)."""

    def __init__(self, saved, label_code):
        self.salt = self.hash = None
        if saved:
            from binascii import unhexlify
            self.salt, self.hash = unhexlify(saved["salt"]), unhexlify(saved["hash"])
        self.code = label_code.encode()
        self._tokens = []  # [token, last used ticks]
        self._fails = 0
        self._locked_until = None

    @property
    def has_password(self):
        return self.hash is not None

    def login(self, now_ms, password):
        """A session token for the right password (or, before one is set, the label code)."""
        if self._locked_until is not None:
            wait = ticks_diff(self._locked_until, now_ms)
            if wait > 0:
                raise Refused("too many wrong passwords: try again later", wait)
        pw = password.encode()
        if len(pw) > _PASSWORD_MAX:
            ok = False
        elif self.hash is None:
            ok = bool(self.code) and _same(pw, self.code)
        else:
            ok = _same(_hash(self.salt, pw), self.hash)
        if not ok:
            self._fails += 1
            if self._fails > _FAILS_FREE:
                lock = _LOCK_MS << min(self._fails - _FAILS_FREE - 1, 8)
                self._locked_until = ticks_add(now_ms, min(lock, _LOCK_MAX_MS))
            raise Refused("wrong password")
        self._fails = 0
        self._locked_until = None
        token = hexlify(os.urandom(_TOKEN_LEN)).decode()
        self._expire(now_ms)
        if len(self._tokens) >= _SESSIONS_MAX:
            self._tokens.pop(0)
        self._tokens.append([token, now_ms])
        return token

    def session(self, now_ms, token):
        """True for a live session (and it is kept alive)."""
        self._expire(now_ms)
        if not token:
            return False
        for t in self._tokens:
            if _same(t[0].encode(), token.encode()):
                t[1] = now_ms
                return True
        return False

    def set_password(self, password):
        """The new password; returns the record to save. Every other session ends."""
        pw = password.encode()
        if not _PASSWORD_MIN <= len(pw) <= _PASSWORD_MAX:
            raise Refused("password must have %d to %d characters" % (_PASSWORD_MIN, _PASSWORD_MAX))
        if self.code and pw == self.code:
            raise Refused("password must not be the label code")
        self.salt = os.urandom(16)
        self.hash = _hash(self.salt, pw)
        return self.record()

    def keep_only(self, token):
        self._tokens = [t for t in self._tokens if t[0] == token]

    def record(self):
        return {"salt": hexlify(self.salt).decode(), "hash": hexlify(self.hash).decode()}  # type: ignore[arg-type]

    def _expire(self, now_ms):
        self._tokens = [t for t in self._tokens if ticks_diff(now_ms, t[1]) < _SESSION_MS]
