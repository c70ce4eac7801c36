# lib/ampshare/mqtt/packet.py (and the client's pure parts) in the unix port, for
# tests/test_mqtt_client.py: one JSON document of cases on stdin, one of results on stdout.
# Bytes travel as hex.
import binascii
import json
import sys

import micropython

from ampshare.mqtt import packet
from ampshare.mqtt.client import SLOTS_MAX, Client, backoff_ms


def h(b):
    return binascii.hexlify(b).decode()


def refused(f, *a):
    try:
        f(*a)
    except ValueError as e:
        return str(e)
    return None


def describe(rd):
    ev = rd.event
    d = {"event": ev, "size": rd.size}
    if ev == packet.CONNACK:
        d["code"], d["present"] = rd.code, rd.present
    elif ev == packet.PUBLISH:
        d.update(topic=h(rd.buf[2:rd.topic_end]), payload=h(rd.buf[rd.payload:rd.size]), qos=rd.qos,
                 retain=rd.retain, dup=rd.dup, pid=rd.pid)
    elif ev == packet.PUBACK:
        d["pid"] = rd.pid
    elif ev == packet.SUBACK:
        d.update(pid=rd.pid, codes=h(rd.buf[2:rd.size]))
    return d


def decode(data, chunk):
    # data fed chunk bytes at a time, as a socket might deliver it: the packets and the index
    # the Reader stopped at.
    rd = packet.Reader()
    mv = memoryview(data)
    evs = []
    pos, n = 0, len(data)
    while pos < n:
        end = min(n, pos + chunk)
        while pos < end:
            pos = rd.feed(mv, pos, end)
            if rd.event:
                evs.append(describe(rd))
                if rd.event < 0:
                    return {"events": evs, "stop": pos}
    return {"events": evs, "stop": pos}


req = json.loads(sys.stdin.read())
res = {}
out = bytearray(600)

res["publish"] = [h(out[:packet.publish_head(out, 0, t.encode(), size, qos, retain, dup, pid)])
                  for t, size, qos, retain, dup, pid in req["publish"]]
res["publish_size"] = [packet.publish_size(len(t), size, qos) for t, size, qos, retain, dup, pid in req["publish"]]
res["connect"] = [h(packet.connect(*c)) for c in req["connect"]]
res["small"] = [h(out[:packet.puback(out, 0, 0x1234)]), h(out[:packet.subscribe(out, 0, 7, b"cmd/limit", 1)]),
                h(out[:packet.pingreq(out, 0)]), h(out[:packet.disconnect(out, 0)])]
small = bytearray(8)
res["refused"] = [
    refused(packet.connect, "id", 60, None, "pw"),  # a password without a user name
    refused(packet.connect, "", 60, None, None, None, b"", False, 0, False),  # no id, not clean
    refused(packet.connect, "id", 60, None, None, "a/#"),  # a will on a wildcard
    refused(packet.publish_head, out, 0, b"t", 268435455, 0),  # over 256 MB
    refused(packet.publish_head, out, 0, b"t", 1, 2, False, False, 1),  # QoS 2
    refused(packet.publish_head, out, 0, b"t", 1, 1, False, False, 0),  # QoS 1 without an id
    refused(packet.publish_head, small, 0, b"a/long/topic", 0),  # past the buffer's end
]
res["small_len"] = len(small)  # refused, not grown
res["decode"] = {name: [decode(binascii.unhexlify(s), chunk) for chunk in (10000, 1)]
                 for name, s in req["decode"].items()}

# Nothing on the heap per value: the encoders, and publish() into a topic's slot.
c = Client("127.0.0.1", 1, "codec")
payloads = [b"%d" % k for k in range(100)]
c.publish("a/b", b"first", True, 1)
micropython.heap_lock()
try:
    for p in payloads:
        c.publish("a/b", p, True, 1)
        c.publish("a/b", p)
    n = packet.publish_head(out, 0, b"a/b", 100, 1, True, True, 9)
    n = packet.puback(out, n, 9)
    n = packet.pingreq(out, n)
    locked = "ok"
except MemoryError:
    locked = "allocated"
micropython.heap_unlock()
res["heap_lock"] = locked

for k in range(1, SLOTS_MAX):
    c.publish("slot/%d" % k, b"x")
res["slot_last"] = refused(c.publish, "one/too/many", b"x")
res["wildcards"] = [refused(c.subscribe, "cmd/+/limit"), refused(c.subscribe, "cmd/#"),
                    refused(c.publish, "a/+", b"x"), refused(c.subscribe, "cmd/limit", 2)]
res["backoff"] = [[level, min(backoff_ms(level, r) for r in range(65536)),
                   max(backoff_ms(level, r) for r in range(65536))] for level in (1000, 2000, 60000)]
print(json.dumps(res))
