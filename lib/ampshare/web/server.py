# The leader's HTTP server (docs/api.md): the page, the live view, the site, pairing, limits
# and the admin's login, on Microdot. Every handler answers from what the shell holds now and
# returns: nothing here waits on the control loop, and the control loop never waits on it
# (each connection is its own task; a slow client holds only its own).
import gc
import json
import time

import asyncio
from micropython import const
from microdot import Microdot, Response
from microdot.microdot import invoke_handler, print_exception, urldecode

from ampshare.core.external import WATCHDOG_MS
from ampshare.run import store
from ampshare.web.auth import Auth, Refused

# A 64-charger site.json is about 9 KB: twice that is room, and bounds what one request holds.
_BODY_MAX = const(20_000)
_LINE_MAX = const(1_024)  # a request line or header: longer is not a browser's
# A request is read this much at a time: each read is a buffer of this size, and a heap in
# small holes has room for it where it may have none for a line's 1,024 bytes.
_PIECE = const(128)
_STREAM_MS = const(1_000)  # the live stream's period, the control period
RESTART_MS = const(500)  # after a saved site: time for the answer to leave before the restart
_AUTH_FILE = const("web.json")  # the admin password's salt and hash, in the settings' state_dir
_COOKIE = const("ampshare")
_PAGES = const(("/rom/page.html.gz", "/lib/page.html.gz"))
JSON = {"Content-Type": "application/json"}
# Connections served at once: each holds a task, its streams and a request (1-2 KB of a heap
# that has some 40 KB to spare with 64 followers). A page holds its live stream and asks one
# thing at a time: room for two phones and an API client. One more is closed at once.
_CONNECTIONS_MAX = const(5)
# A request's line, headers and body must have arrived within this, or the connection is
# closed: a client that sends a byte a second holds a slot no longer (a stream, once
# answered, lasts while its client reads).
_REQUEST_MS = const(10_000)
# Each write of an answer must be taken within this: the live stream sends one a second, so a
# client that takes nothing for 10 s has stopped reading.
_WRITE_MS = const(10_000)
_WATCH_MS = const(500)  # how often the connections' deadlines are looked at: they are 10 s
# An answer is written from a buffer of this, made for each connection slot at start: the live
# document is 10 to 16 KB with 64 chargers, some 70 pieces; a write each was a wait each.
_OUT = const(512)
_FREE = const(0)  # a connection slot's states
_READING = const(1)
_ANSWERING = const(2)
_LIMITS_KEPT = const(8)  # limit ids the API can still clear (core/external.py keeps 8 answers)
# The phone probes that open a captive portal's sign-in page: each gets the page.
_PROBES = const(("/generate_204", "/gen_204", "/hotspot-detect.html", "/connecttest.txt", "/ncsi.txt"))


class _Req:
    """What a handler reads of a request, in eight attributes. Microdot's Request keeps some
    27: their table is one piece of 464 bytes a request, which a running leader's heap often
    did not have (the request was then answered 400; make bench-mem)."""

    def __init__(self, method, path, args, cookies, etag, length, body):
        self.method, self.path, self.args, self.cookies = method, path, args, cookies
        self.etag = etag  # If-None-Match
        self.content_length, self.body = length, body
        self.url_args = None


class _Lines:
    """A request read a bounded piece at a time: asyncio's readline reads a line whole however
    long it is, so a client sending a header without its end had the leader allocate all of
    it (56 KB asked for in a test) before its length was looked at. (Its names are ones the
    firmware has already: each new name costs the leader's heap, and a seventh pool of them
    14 KB.)"""

    def __init__(self, reader):
        self.r = reader
        self.data = b""  # read, not yet taken: at most a line and a piece

    async def read(self):
        """The request line, the three headers a handler reads (the others read and dropped,
        so none is kept beyond its line) and a body of at most _BODY_MAX (a longer one is
        left unread and answered 413), as a _Req; None for no request line. ValueError for
        one malformed: answered 400."""
        line = await self.readline()
        if not line:
            return None
        method, url, _ = line.split()
        path, _, query = url.partition("?")
        args, cookies, etag, length = {}, {}, None, 0
        for pair in query.split("&") if query else ():
            k, _, v = pair.partition("=")
            k = urldecode(k)
            if k not in args:  # the first of a repeated name, as Microdot's MultiDict.get
                args[k] = urldecode(v)
        while True:
            line = await self.readline()
            if not line:
                break
            name, value = line.split(":", 1)
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "cookie":
                for part in value.split(";"):
                    k, _, v = part.strip().partition("=")
                    cookies[k] = v
            elif name == "if-none-match":
                etag = value
        body = await self.readexactly(length) if 0 < length <= _BODY_MAX else b""
        return _Req(method, path, args, cookies, etag, length, body)

    async def readline(self):
        while True:
            i = self.data.find(b"\n")
            if i >= 0:
                line, self.data = self.data[:i], self.data[i + 1:]
                break
            if len(self.data) > _LINE_MAX:
                raise ValueError("line too long")
            more = await self.r.read(_PIECE)
            if not more:  # the client's end: what came is the last line
                line, self.data = self.data, b""
                break
            self.data += more
        if len(line) > _LINE_MAX:
            raise ValueError("line too long")
        return line.strip().decode()

    async def readexactly(self, n):
        got, self.data = self.data[:n], self.data[n:]
        return got + await self.r.readexactly(n - len(got)) if len(got) < n else got


def _bad(field, reason, status=400):
    return {"field": field, "reason": reason}, status


def _body(req):
    # The request's JSON object, or a refusal naming what is wrong.
    try:
        obj = json.loads(req.body)
    except (ValueError, TypeError, UnicodeError):
        return None, _bad("body", "not JSON")
    if not isinstance(obj, dict):
        return None, _bad("body", "must be a JSON object")
    return obj, None


def _fields(obj, allowed):
    for name in obj:
        if name not in allowed:
            return _bad(name, "unknown field")
    return None


# docs/api.md: method, path, the handler's name.
_ROUTES = (("GET", "/api/state", "state"), ("GET", "/api/stream", "stream"), ("GET", "/api/site", "get_site"),
           ("PUT", "/api/site", "put_site"), ("POST", "/api/site/preview", "preview"), ("GET", "/api/units", "units"),
           ("POST", "/api/pair", "pair"), ("POST", "/api/unpair", "unpair"), ("POST", "/api/sharing", "sharing"),
           ("GET", "/api/events", "events"), ("GET", "/api/history", "history"), ("POST", "/api/limit", "set_limit"),
           ("GET", "/api/limit/<int:rid>", "get_limit"), ("DELETE", "/api/limit/<int:rid>", "clear_limit"),
           ("POST", "/api/login", "login"), ("POST", "/api/password", "password"), ("GET", "/api/mqtt", "get_mqtt"),
           ("PUT", "/api/mqtt", "put_mqtt"), ("DELETE", "/api/mqtt", "delete_mqtt"))
_ID = const("<int:rid>")  # a path's last part that names a limit request: rid, an int
_MQTT_FIELDS = ("host", "port", "user", "password", "prefix", "discovery", "tls")


class _Events:
    # The live stream as an async iterator (MicroPython has no async generators): a document
    # now, then one a second until the client goes away (Microdot then closes it). Each is
    # sent a group or a charger at a time, never whole.
    def __init__(self, app):
        self.app = app
        self.doc = None
        self.first = True

    def __aiter__(self):
        return self

    async def __anext__(self):
        from ampshare.web import live
        if self.doc is None:
            if not self.first:
                await asyncio.sleep_ms(_STREAM_MS)
            self.first = False
            self.doc = live.state(self.app)
            return "data: "
        try:
            return next(self.doc)
        except StopIteration:
            self.doc = None
            return "\n\n"


class _Server(Microdot):
    """Microdot with a bound on connections and on the time a request may take to arrive and
    an answer to be taken, with the routes of one table (_ROUTES) in place of a route object
    each, and an answer written from a buffer each connection slot has from the start."""

    def __init__(self, web):
        super().__init__()
        self.web = web
        self.open = 0
        self.refused = 0  # connections closed at once: _CONNECTIONS_MAX were open
        self.timed_out = 0  # requests that had not arrived within _REQUEST_MS
        self.stalled = 0  # answers a client did not take within _WRITE_MS
        self.timeout = _WRITE_MS  # the most a write may wait on its client
        # A slot per connection: its state (_FREE, _READING, _ANSWERING), its task while it
        # waits on its client and since when, and its buffer. Made now, while the heap is in
        # one piece: a running leader's heap has room for many small pieces but few of 512
        # bytes. (Names the firmware has already: see _Lines.)
        self.state = bytearray(_CONNECTIONS_MAX)
        self.task = [None] * _CONNECTIONS_MAX  # type: list
        self.waiting = [0] * _CONNECTIONS_MAX  # type: list
        self.buf = [bytearray(_OUT) for _ in range(_CONNECTIONS_MAX)]
        asyncio.create_task(self._watch())  # made in the leader's running loop

    def find_route(self, req):
        # Microdot keeps a route as its pattern, its methods' list and its handler, and once a
        # request has been matched against it, a compiled regex and a dict for each part of
        # its path: 13 KB of this 64-bit port's heap for our 25 paths (measured with
        # gc.mem_alloc()), and the bound method of each. The table, its strings in the code's
        # image, costs none of it. The handler, or 404 or 405; the path's values in url_args
        # (dispatch_request, ours, is its one caller).
        method = req.method.upper()
        if method == "HEAD":
            method = "GET"
        path, req.url_args = req.path, {}
        if path == "/" or path in _PROBES:
            return self.web.page_handler if method == "GET" else 405
        found = 404
        for want, route, name in _ROUTES:
            if route.endswith(_ID):
                head = route[:-len(_ID)]
                rest = path[len(head):] if path.startswith(head) else ""
                if not (rest.isdigit() or (rest[:1] == "-" and rest[1:].isdigit())):
                    continue
                req.url_args = {"rid": int(rest)}
            elif path != route:
                continue
            if method == want:
                return getattr(self.web, name)
            found = 405
        return found

    async def dispatch_request(self, req):
        # Microdot's, less what this server does not use (hooks, sub-applications, error
        # handlers): its coroutine held a frame of 328 bytes a request, the piece a fragmented
        # heap failed to find (make bench-mem).
        if req is None:
            res = Response("Bad request", 400)
        elif req.content_length > _BODY_MAX:
            res = Response("Payload too large", 413)
        else:
            f = self.find_route(req)
            if isinstance(f, int):
                res = Response("Not found", f)
            else:
                try:
                    # A Response, (body, status[, headers]) or a body, as Microdot takes them.
                    res = await invoke_handler(f, req, **req.url_args)
                    if not isinstance(res, Response):
                        res = Response(*res) if isinstance(res, tuple) else Response(res)
                except Exception as e:  # a handler's fault, or no room for its answer: 500
                    print_exception(e)
                    res = Response("Internal server error", 500)
        res.is_head = req is not None and req.method == "HEAD"
        return res

    async def handle_request(self, reader, writer):
        if self.open >= _CONNECTIONS_MAX:
            self.refused += 1
            await _close(writer)
            return
        i = 0
        while self.state[i] != _FREE:  # one is: at most _CONNECTIONS_MAX are open
            i += 1
        self.state[i] = _READING
        self.open += 1
        try:
            await self._serve(reader, writer, i)
        finally:
            self.task[i] = None
            self.state[i] = _FREE
            self.open -= 1

    async def _watch(self):
        # One task for every connection's deadline, where asyncio.wait_for_ms made a task and
        # two coroutines for each write: the client that has not sent its request or taken
        # an answer in time is cancelled out of its wait.
        while True:
            await asyncio.sleep_ms(_WATCH_MS)
            now = time.ticks_ms()
            for i in range(_CONNECTIONS_MAX):
                t, reading = self.task[i], self.state[i] == _READING
                if t is not None and time.ticks_diff(now, self.waiting[i]) >= (_REQUEST_MS if reading else self.timeout):
                    self.task[i] = None
                    if reading:
                        self.timed_out += 1
                    else:
                        self.stalled += 1
                    t.cancel()

    async def _serve(self, reader, writer, i):
        try:
            self.task[i], self.waiting[i] = asyncio.current_task(), time.ticks_ms()
            req = await _Lines(reader).read()
        except asyncio.CancelledError:  # counted by _watch
            req = False
        except MemoryError as e:  # not the client's fault: said, not answered 400
            print_exception(e)
            req = False
        except Exception:  # a malformed request line or header, or one too long: answered 400
            req = None
        self.task[i] = None
        self.state[i] = _ANSWERING
        try:
            if req is not False:
                await _Out(self, i, writer).send(await self.dispatch_request(req))
        except (OSError, asyncio.CancelledError):
            pass  # the client went away (a phone out of range), or stopped reading: closed below
        finally:
            await _close(writer)


class _Out:
    """A connection's answer, gathered in its slot's buffer and written when the buffer fills,
    an event of the stream ends or the answer ends: each write is a wait on the client, and
    the live document is some 70 pieces."""

    def __init__(self, server, i, writer):
        self.server, self.i, self.w = server, i, writer
        self.buf = server.buf[i]
        self.n = 0

    async def send(self, res):
        # Microdot's Response.write, less its per-answer class and its per-header writes.
        res.complete()
        code = res.status_code
        await self.add("HTTP/1.0 %d %s\r\n" % (code, res.reason or ("OK" if code == 200 else "N/A")))
        for name, value in res.headers.items():
            for v in (value if isinstance(value, list) else (value,)):
                await self.add("%s: %s\r\n" % (name, v))
        await self.add("\r\n")
        body = res.body
        if res.is_head or not body:
            if hasattr(body, "readinto"):
                body.close()  # a HEAD for the page: the file is not sent
        elif hasattr(body, "__anext__"):  # the live stream: an event is sent when it is whole
            async for piece in body:
                await self.add(piece)
                if piece == "\n\n":
                    await self.flush()
        elif hasattr(body, "readinto"):  # a file (the page, the site), read into the buffer
            try:
                await self.flush()
                while True:
                    n = body.readinto(self.buf)
                    if not n:
                        break
                    await self.write(memoryview(self.buf)[:n])
            finally:
                body.close()
        elif hasattr(body, "__next__"):  # JSON text a piece at a time
            for piece in body:
                await self.add(piece)
        else:
            await self.add(body)
        await self.flush()

    async def add(self, data):
        if isinstance(data, str):
            data = data.encode()
        n = len(data)
        if self.n + n > _OUT:
            await self.flush()
            if n > _OUT:
                await self.write(data)
                return
        self.buf[self.n:self.n + n] = data
        self.n += n

    async def flush(self):
        if self.n:
            n, self.n = self.n, 0
            await self.write(memoryview(self.buf)[:n])

    async def write(self, data):
        s, i = self.server, self.i
        s.task[i], s.waiting[i] = asyncio.current_task(), time.ticks_ms()
        await self.w.awrite(data)
        s.task[i] = None


async def _close(writer):
    try:
        await writer.aclose()
    except OSError:
        pass


def _page():
    # The first of the places make deploy puts the page: the ROM image, else /lib.
    import os
    for path in _PAGES:
        try:
            os.stat(path)
            return path
        except OSError:
            pass
    return _PAGES[0]


class Web:
    def __init__(self, app, settings):
        # The live view's module first, before the garbage of reading the password's file and
        # hashing the page: loaded after, it found no piece of 1,280 bytes in 96wK; loaded by
        # the first request, it would be loaded into whatever a running leader has left.
        from ampshare.web import live  # noqa: F401
        self.app = app
        self.site_path = settings["site"]
        self.page = settings["page"] or _page()
        self.private = settings["private"]
        self.auth_path = settings["state_dir"] + "/" + _AUTH_FILE
        self.auth = Auth(store.read_json(self.auth_path, None), settings["code"])
        self.http = settings["http"]
        # What the board reads meters with, for a site saved from the page (config/settings.unwired).
        self._wiring = {k: settings[k] for k in ("hal", "rs485", "ct", "mqtt")}
        self.etag = self._etag()
        self.limits = []  # [request id, kind, ident], newest last
        self.md = _Server(self)

    def _etag(self):
        # The page's hash, once: a phone that has it asks with If-None-Match and gets 304.
        import hashlib
        from binascii import hexlify
        h = hashlib.sha256()
        try:
            with open(self.page, "rb") as f:
                while True:
                    chunk = f.read(512)
                    if not chunk:
                        break
                    h.update(chunk)
        except OSError:
            return None
        return '"%s"' % hexlify(h.digest()[:8]).decode()

    async def run(self):
        await self.md.start_server(host=self.http.get("bind", "0.0.0.0"), port=self.http["port"])

    def _event(self, kind, text):
        self.app.events.add(time.ticks_ms(), kind, text)

    # ---- who may ----------------------------------------------------------------------------

    def _session(self, req):
        return self.auth.session(time.ticks_ms(), req.cookies.get(_COOKIE))

    def _admin(self, req):
        """None when the request may change things, else the refusal to answer."""
        if not self._session(req):
            return _bad("session", "log in first", 401)
        if not self.auth.has_password:
            return _bad("session", "set a password first", 403)
        return None

    def _asked(self, req, fields, who="admin"):
        """(the request's JSON object, None), or (None, the refusal to answer): who may ask
        ("admin", "session" or None), and the only fields it may carry."""
        if who == "admin":
            bad = self._admin(req)
        elif who == "session" and not self._session(req):
            bad = _bad("session", "log in first", 401)
        else:
            bad = None
        if bad:
            return None, bad
        obj, bad = _body(req)
        if bad:
            return None, bad
        bad = _fields(obj, fields)
        return (None, bad) if bad else (obj, None)

    def _reader(self, req):
        if self.private and not (self._session(req) and self.auth.has_password):
            return _bad("session", "log in first (the live view is private)", 401)
        return None

    def _password(self, req, who):
        # (the password a login or a change carries, None), or (None, the refusal).
        obj, bad = self._asked(req, ("password",), who)
        if bad:
            return None, bad
        pw = obj.get("password")
        return (pw, None) if isinstance(pw, str) else (None, _bad("password", "must be a string"))

    async def login(self, req):
        pw, bad = self._password(req, None)
        if bad:
            return bad
        try:
            token = self.auth.login(time.ticks_ms(), pw)
        except Refused as e:
            if e.retry_ms:
                return {"field": "password", "reason": e.reason}, 429, {"Retry-After": str((e.retry_ms + 999) // 1000)}
            return _bad("password", e.reason, 401)
        res = Response({"password_set": self.auth.has_password})
        res.headers["Set-Cookie"] = "%s=%s; Path=/; HttpOnly; SameSite=Strict" % (_COOKIE, token)
        return res

    async def password(self, req):
        pw, bad = self._password(req, "session")
        if bad:
            return bad
        try:
            record = self.auth.set_password(pw)
        except Refused as e:
            return _bad("password", e.reason)
        if not self.app.persist(store.save_json, self.auth_path, record):
            return _bad("password", "could not be saved to flash (kept until a restart)", 500)
        self.auth.keep_only(req.cookies.get(_COOKIE))
        return {"password_set": True}

    # ---- the page and the live view ---------------------------------------------------------

    async def page_handler(self, req):
        if self.etag is None:
            return "the page is not on this board (settings.page)", 404
        if req.etag == self.etag:
            return "", 304, {"ETag": self.etag}
        res = Response.send_file(self.page, content_type="text/html; charset=UTF-8", compressed=True, max_age=0)
        res.headers["ETag"] = self.etag
        return res

    async def state(self, req):
        from ampshare.web import live
        return self._reader(req) or (live.state(self.app), 200, JSON)

    async def stream(self, req):
        # Server-sent events: the live document once a second while the page is open.
        return self._reader(req) or (_Events(self.app), 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})

    # ---- the site -----------------------------------------------------------------------------

    async def get_site(self, req):
        bad = self._reader(req)
        if bad:
            return bad
        return Response.send_file(self.site_path, content_type="application/json", max_age=0)

    def _parse_site(self, req):
        # An admin's site: (the JSON, the parsed site, None) or (None, None, the refusal).
        from ampshare.config import site as sitemod
        from ampshare.config.units import ConfigError
        bad = self._admin(req)
        if bad:
            return None, None, bad
        obj, bad = _body(req)
        if bad:
            return None, None, bad
        try:
            return obj, sitemod.parse(obj), None
        except ConfigError as e:
            return None, None, _bad(e.field, e.reason)

    async def put_site(self, req):
        obj, site, bad = self._parse_site(req)
        if bad:
            if bad[1] == 400:
                self._event("config", "site refused: %s: %s" % (bad[0]["field"], bad[0]["reason"]))
            return bad
        from ampshare.config.settings import unwired
        bad = unwired(self._wiring, site)
        site = None
        if bad is not None:
            # Saved, it would stop the leader at every start (run/leader.py): refused now.
            field, reason = "meters[%d].source" % bad[0], "this leader reads no %s meter: set settings.%s first" % (
                bad[1], bad[2])
            self._event("config", "site refused: %s: %s" % (field, reason))
            return _bad(field, reason)
        if not self.app.persist(store.save_json, self.site_path, obj):
            return _bad("site", "could not be saved to flash; the old one stays", 500)
        self._event("site", "site saved: applied by a restart")
        # Applied by starting the leader again on it: a new leader adopts what every follower
        # does (no pause) and counts each at its maximum until it knows (docs/leader.md).
        self.app.restart_after(RESTART_MS)
        return {"saved": True, "applied_in_ms": RESTART_MS}

    # ---- the MQTT settings ---------------------------------------------------------------------

    async def get_mqtt(self, req):
        # settings.mqtt as saved (the password never sent back: only whether there is one), and
        # the client's state when it runs.
        bad = self._admin(req)
        if bad:
            return bad
        m = self._settings().get("mqtt")
        if isinstance(m, dict):
            m = dict(m)
            m["password_set"] = bool(m.pop("password", None))
        b = self.app.mqtt
        return {"mqtt": m, "status": b.client.stats() if b is not None else None}

    async def put_mqtt(self, req):
        obj, bad = self._asked(req, _MQTT_FIELDS)
        return bad or self._save_mqtt(obj)

    async def delete_mqtt(self, req):
        return self._admin(req) or self._save_mqtt(None)

    def _settings(self):
        raw = store.read_json(store.SETTINGS_FILE, None)
        return raw if isinstance(raw, dict) else {}

    def _save_mqtt(self, m):
        # The board's settings with this mqtt (None: off), checked as a start would check them,
        # saved atomically and applied by a restart, as a saved site is. A password left out is
        # kept (the page never has it); a refusal names the field and changes nothing.
        from ampshare.config import settings as setmod
        from ampshare.config.units import ConfigError
        raw = self._settings()
        if not raw:
            return _bad("settings", "the board's settings.json could not be read", 500)
        old = raw.get("mqtt")
        if m is not None and "password" not in m and m.get("user") and isinstance(old, dict):
            m["password"] = old.get("password")
        raw["mqtt"] = m
        try:
            setmod.parse(dict(raw))
            if setmod.unwired(dict(self._wiring, mqtt=m), self.app.site) is not None:
                # Without MQTT the site's MQTT meter would stop the leader at every start.
                raise ConfigError("mqtt", "the site has an MQTT meter: take it out of the site first")
        except ConfigError as e:
            self._event("config", "MQTT settings refused: %s: %s" % (e.field, e.reason))
            return _bad(e.field, e.reason)
        if not self.app.persist(store.save_json, store.SETTINGS_FILE, raw):
            return _bad("settings", "could not be saved to flash; the old ones stay", 500)
        self._event("mqtt", "MQTT %s: applied by a restart" % ("settings saved" if m else "turned off"))
        self.app.restart_after(RESTART_MS)
        return {"saved": True, "applied_in_ms": RESTART_MS}

    async def preview(self, req):
        obj, site, bad = self._parse_site(req)
        if bad:
            return bad
        from ampshare.web import live
        from ampshare.config import snapshot
        from ampshare.config.units import ConfigError
        state = live.snapshot_state(self.app, site)
        site = None
        gc.collect()
        try:
            alloc = snapshot.run(obj, state)
        except ConfigError as e:
            return _bad(e.field, e.reason)
        return snapshot.to_json(alloc), 200, JSON

    # ---- units and pairing --------------------------------------------------------------------

    async def events(self, req):
        return self._reader(req) or (self.app.events.chunks(time.ticks_ms()), 200, JSON)

    async def history(self, req):
        # One node's series on one phase, streamed from flash a few dozen values at a time.
        bad = self._reader(req)
        if bad:
            return bad
        from ampshare.run import history
        node, phase = req.args.get("node"), req.args.get("phase")
        if phase not in ("1", "2", "3"):
            return _bad("phase", "must be 1, 2 or 3")
        found = history.index(self.app.site, node, int(phase) - 1)
        if found is None:
            return _bad("node", "no such group or charger")
        h = self.app.history
        if h.off is not None:
            return _bad("history", h.off, 503)
        return h.chunks(found[0], found[1], time.ticks_ms()), 200, JSON

    async def sharing(self, req):
        obj, bad = self._asked(req, ("on",))
        if bad:
            return bad
        on = obj.get("on")
        if not isinstance(on, bool):
            return _bad("on", "must be true or false")
        if not self.app.share(on):
            return _bad("on", "in force, but could not be saved to flash: a restart forgets it", 500)
        return {"sharing": on}

    async def units(self, req):
        from ampshare.web import live
        return self._reader(req) or (live.units(self.app), 200, JSON)

    async def pair(self, req):
        obj, bad = self._asked(req, ("charger", "uid", "code"))
        if bad:
            return bad
        cid, uid, code = obj.get("charger"), obj.get("uid"), obj.get("code")
        if cid not in self.app.site.charger_ids:
            return _bad("charger", "no such charger in the site")
        from binascii import unhexlify
        try:
            raw = unhexlify(uid) if isinstance(uid, str) else b""
        except ValueError:
            raw = b""
        if len(raw) != 6:
            return _bad("uid", "must be 12 hex digits")
        if not isinstance(code, str) or not code:
            return _bad("code", "the code on the unit's label")
        refused = self.app.list_unit(cid, raw, code.encode())
        if refused:
            return _bad(*refused)
        return {"listed": cid, "uid": uid}

    async def unpair(self, req):
        obj, bad = self._asked(req, ("charger",))
        if bad:
            return bad
        cid = obj.get("charger")
        if cid not in self.app.site.charger_ids:
            return _bad("charger", "no such charger in the site")
        refused = self.app.unpair(cid)
        if refused:
            return _bad(*refused)
        return {"unpaired": cid}

    # ---- external limits ----------------------------------------------------------------------

    async def set_limit(self, req):
        obj, bad = self._asked(req, ("group", "charger", "a", "w", "watchdog_s"))
        if bad:
            return bad
        kind = "group" if "group" in obj else "charger" if "charger" in obj else None
        if kind is None or ("group" in obj and "charger" in obj):
            return _bad("group", "name one group or one charger")
        ident = obj[kind]
        a, w, wd = obj.get("a"), obj.get("w"), obj.get("watchdog_s", WATCHDOG_MS // 1000)
        if a is not None and w is not None:
            return _bad("a", "give a or w, not both")
        from ampshare.config.units import ConfigError, ma
        try:
            if a is not None:
                a = [ma(x, "a", 0, 1000, 3) for x in a] if isinstance(a, list) else ma(a, "a", 0, 1000, 3)
        except ConfigError as e:
            return _bad(e.field, e.reason)
        if w is not None and (isinstance(w, bool) or not isinstance(w, int)):
            return _bad("w", "must be whole watts")
        if isinstance(wd, bool) or not isinstance(wd, int) or wd < 0:
            return _bad("watchdog_s", "must be whole seconds, 0 for none")
        if a is None and w is None:
            return _bad("a", "give a or w (DELETE /api/limit/<id> clears one)")
        rid = self.app.core.limit(time.ticks_ms(), kind, ident, a, w, wd * 1000)
        if len(self.limits) >= _LIMITS_KEPT:
            self.limits.pop(0)
        self.limits.append([rid, kind, ident])
        state, reason = self.app.core.external.answer(rid)
        self._event("limit", "%s %s: %s %s%s" % (kind, ident, "%s A" % obj["a"] if w is None else "%d W" % w,
                                                 state, ": " + reason if reason else ""))
        return {"id": rid, "state": state, "reason": reason}

    async def get_limit(self, req, rid):
        bad = self._reader(req)
        if bad:
            return bad
        got = self.app.core.external.answer(rid)
        if got is None:
            return _bad("id", "no such request (or forgotten)", 404)
        return {"id": rid, "state": got[0], "reason": got[1]}

    async def clear_limit(self, req, rid):
        bad = self._admin(req)
        if bad:
            return bad
        for entry in self.limits:
            if entry[0] == rid:
                new = self.app.core.limit(time.ticks_ms(), entry[1], entry[2])
                state, reason = self.app.core.external.answer(new)
                self._event("limit", "%s %s: cleared" % (entry[1], entry[2]))
                return {"id": new, "state": state, "reason": reason}
        return _bad("id", "no such request (or forgotten)", 404)
