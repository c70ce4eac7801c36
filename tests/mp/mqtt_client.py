# An MQTT Client (lib/ampshare/mqtt/client.py) in a process of its own, for
# tests/test_mqtt_client.py: mqtt_client.py CONFIG, CONFIG a JSON object of the Client's arguments
# (host, port, client_id, user, password, will, keepalive_s, tls, resolve: an IP address every
# name resolves to) and subs ([topic, qos] to subscribe to at start).
#
# Requests come as JSON lines on stdin; each gets one JSON line back, and every message that comes
# in is a line {"msg": [topic, payload, n]}. Beside the client, a task ticks every TICK_MS and
# keeps the longest gap between two ticks: what shows that nothing blocked the event loop.
import binascii
import gc
import json
import socket
import sys

import asyncio
from time import ticks_diff, ticks_ms

from ampshare.mqtt.client import Client

TICK_MS = 100
cfg = json.loads(sys.argv[1])


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")


class Ticks:
    n = 0
    gap = 0


async def ticker():
    last = ticks_ms()
    while True:
        await asyncio.sleep_ms(TICK_MS)
        now = ticks_ms()
        Ticks.gap = max(Ticks.gap, ticks_diff(now, last))
        Ticks.n += 1
        last = now


def on_message(topic, payload):
    say({"msg": [topic.decode(), payload.decode(), len(payload)]})
    if payload == b"boom":
        raise ValueError("boom")


class Source:
    """The lazy slots' source: key k's topic is <base>/<k>, its value "v<k>-<n>", n the times
    it was touched; both made only when the client sends them."""
    base = "t/lazy"
    n = []
    made = 0

    def topic(self, k):
        return ("%s/%d" % (self.base, k)).encode()

    def payload(self, k):
        Source.made += 1
        return b"v%d-%d" % (k, self.n[k])


def heap():
    gc.collect()
    return gc.mem_alloc()


def make_client():
    tls = cfg.get("tls")
    if isinstance(tls, dict):  # a context that checks the broker against the test's CA
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        with open(tls["ca"], "rb") as f:
            pem = f.read()
        # cadata takes DER: the base64 between the PEM's armour lines
        ctx.load_verify_locations(cadata=binascii.a2b_base64(b"".join(pem.split(b"\n")[1:-2])))
        tls = ctx
    resolve = None
    if cfg.get("resolve"):
        ip = cfg["resolve"]

        def resolve(host, port):
            return socket.getaddrinfo(ip, port, 0, socket.SOCK_STREAM)[0][-1]
    will = cfg.get("will")
    return Client(cfg.get("host", "127.0.0.1"), cfg["port"], cfg["client_id"], user=cfg.get("user"),
                  password=cfg.get("password"), will=tuple(will) if will else None,
                  keepalive_s=cfg.get("keepalive_s", 60), resolve=resolve, tls=tls, on_message=on_message,
                  source=Source(), retained=cfg.get("retained", False))


def handle(c, req):
    op = req["op"]
    if op == "stats":
        s = c.stats()
        s["ticks"], s["gap"] = Ticks.n, Ticks.gap
        return s
    if op == "ticks":  # and start a new measure of the longest gap
        got = {"n": Ticks.n, "gap": Ticks.gap}
        Ticks.gap = 0
        return got
    if op == "pub":
        c.publish(req["topic"], req["payload"], req.get("retain", False), req.get("qos", 0))
        return True
    if op == "pubs":  # n values, each a new object: 0001...., 0002...., and the heap around them
        before = heap()
        pad = b"." * req.get("pad", 0)
        for k in range(1, req["n"] + 1):
            c.publish(req["topic"], b"%04d" % k + pad, req.get("retain", False), req.get("qos", 0))
        return {"before": before, "after": heap()}
    if op == "big":  # one object of size bytes (0, 1, ... 255, 0, ...) as the value of n topics
        big = bytes(range(256)) * (req["size"] // 256)
        for k in range(req["n"]):
            c.publish("%s/%d" % (req["topic"], k), big)
        return True
    if op == "lazy":  # n lazy slots under base: their slot numbers
        Source.base = req["base"]
        Source.n = [0] * req["n"]
        return [c.lazy(k) for k in range(req["n"])]
    if op == "touch":  # each of the slots touched `times` times; the heap around it, and what was made
        before = heap()
        for _ in range(req["times"]):
            for k, slot in enumerate(req["slots"]):
                Source.n[k] += 1
                c.touch(slot)
        return {"before": before, "after": heap(), "made": Source.made}
    if op == "sub":
        c.subscribe(req["topic"], req.get("qos", 0))
        return True
    if op == "close":
        c.close(req.get("disconnect", True))
        return True
    raise ValueError("no op " + op)


async def requests(c):
    stdin = asyncio.StreamReader(sys.stdin)
    while True:
        line = await stdin.readline()
        if not line:
            return
        req = json.loads(line)
        try:
            say({"ok": handle(c, req)})
        except Exception as e:
            say({"error": "%s: %s" % (type(e).__name__, e)})


async def main():
    c = make_client()
    for topic, qos in cfg.get("subs", ()):
        c.subscribe(topic, qos)
    asyncio.create_task(ticker())
    asyncio.create_task(c.run())
    say({"ready": True})
    await requests(c)


asyncio.run(main())
