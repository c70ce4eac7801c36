# Home Assistant MQTT discovery (docs/mqtt.md): the leader as a device (the sharing switch and
# each group's figures and limit), each charger as a device via the leader (its figures, its
# maximum, its mode). One config per entity at homeassistant/<component>/<node_id>/<object_id>/
# config, retained, abbreviated keys, made one at a time from a generator and published through
# ONE client slot whose topic is changed for each config once the previous one is out (a slot
# per config would take 10 per charger of the client's 160; see _put). Paced at _PACE_MS.
# Published again after every (re)connect and when Home Assistant says "online".
import json

import asyncio
from micropython import const

_PACE_MS = const(250)  # four configs a second at most: 64 chargers' 640 in under 3 minutes
PREFIX = "homeassistant"


def _safe(s):
    # A node or object id: [a-zA-Z0-9_-] (Home Assistant's rule), anything else as _.
    return "".join(ch if ch.isalpha() or ch.isdigit() or ch in "_-" else "_" for ch in s)


class Discovery:
    def __init__(self, bridge):
        self.b = bridge
        self.node = "ampshare_" + _safe(bridge.uid)
        self._gen = None
        self._again = True
        self._key = None  # the slot's key in the client (the first config's topic)
        self._connects = 0
        self.passes = 0  # complete passes published
        self.sent = 0

    def again(self):
        """Publish every config again (Home Assistant restarted, or the broker did)."""
        self._again = True

    async def run(self):
        c = self.b.client
        while True:
            try:
                if c.connects != self._connects:
                    self._connects = c.connects
                    self._again = True
                if self._again and self._idle():
                    self._again = False
                    self._gen = self.configs()
                if self._gen is not None and self._idle():
                    try:
                        topic, payload = next(self._gen)
                    except StopIteration:
                        self._gen = None
                        self.passes += 1
                    else:
                        self._put(topic, payload)
            except Exception:  # counted on the site document; never stops the board
                self.b.errors += 1
                self._gen = None
            await asyncio.sleep_ms(_PACE_MS)

    def _idle(self):
        return self._key is None or not self.b.client.waiting(self._key)

    def _put(self, topic, payload):
        # The client keeps a slot per topic (client.py): the discovery slot is registered once,
        # then its topic is replaced by the next config's once the last was taken into the
        # output buffer (the topic's bytes are copied there: a replaced topic is never sent
        # for an older value). A reconnect re-sends the slot's last config: harmless.
        c = self.b.client
        if self._key is None:
            self._key = topic
        else:
            c.rename(self._key, topic)
        c.publish(self._key, payload, True)
        self.sent += 1

    # ---- the configs ------------------------------------------------------------------------

    def configs(self):
        b = self.b
        site = b.app.site
        node = self.node
        avty = b.status_t
        leader = {"ids": [node], "name": "ampshare leader", "mf": "ampshare", "mdl": "leader"}

        def cfg(comp, dev, obj, name, extra):
            c = {"name": name, "uniq_id": node + "_" + obj, "default_entity_id": comp + "." + node + "_" + obj,
                 "avty_t": avty, "dev": dev}
            c.update(extra)
            return "%s/%s/%s/%s/config" % (PREFIX, comp, node, obj), json.dumps(c)

        def amps(stat, tpl, dev, obj, name):
            return cfg("sensor", dev, obj, name, {"stat_t": stat, "val_tpl": tpl, "dev_cla": "current",
                                                  "unit_of_meas": "A", "stat_cla": "measurement"})

        yield cfg("switch", leader, "sharing", "Sharing", {
            "stat_t": b.site_t, "val_tpl": "{{ value_json.sharing }}", "cmd_t": b.pre + "/sharing/set",
            "pl_on": "on", "pl_off": "off", "stat_on": "on", "stat_off": "off"})
        for g, gid in enumerate(site.group_ids):
            t, o = b.group_topic(g), "group_" + _safe(gid)
            for p in range(3):
                yield amps(t, "{{ (value_json.meter_ma[%d] / 1000) if value_json.meter_ma else None }}" % p,
                           leader, "%s_meter_l%d" % (o, p + 1), "%s meter L%d" % (gid, p + 1))
                yield amps(t, "{{ value_json.available_ma[%d] / 1000 }}" % p, leader,
                           "%s_available_l%d" % (o, p + 1), "%s available L%d" % (gid, p + 1))
                yield amps(t, "{{ value_json.allocated_ma[%d] / 1000 }}" % p, leader,
                           "%s_allocated_l%d" % (o, p + 1), "%s allocated L%d" % (gid, p + 1))
            top = max(site.limit[g * 3], site.limit[g * 3 + 1], site.limit[g * 3 + 2]) / 1000
            yield cfg("number", leader, o + "_limit", "%s limit" % gid, {
                "stat_t": t, "val_tpl": "{{ ((value_json.ext_ma or value_json.limit_ma) | max) / 1000 }}",
                "cmd_t": b.pre + "/limit/set", "cmd_tpl": '{"group": %s, "a": {{ value }}, "watchdog_s": 0}' % json.dumps(gid),
                "min": 0, "max": top, "step": 1, "mode": "box", "dev_cla": "current", "unit_of_meas": "A"})
        for c, cid in enumerate(site.charger_ids):
            t, o = b.charger_topic(c), "charger_" + _safe(cid)
            named = json.dumps(cid)
            dev = {"ids": [node + "_" + _safe(cid)], "name": cid, "mf": "ampshare", "mdl": "follower",
                   "via_device": node}
            yield cfg("sensor", dev, o + "_state", "State", {"stat_t": t, "val_tpl": "{{ value_json.state }}"})
            yield amps(t, "{{ value_json.offered_ma / 1000 }}", dev, o + "_offered", "Offered")
            for p in range(3):
                yield amps(t, "{{ value_json.draw_ma[%d] / 1000 }}" % p, dev, "%s_draw_l%d" % (o, p + 1),
                           "Draw L%d" % (p + 1))
            yield cfg("sensor", dev, o + "_power", "Power", {
                "stat_t": t, "val_tpl": "{{ value_json.power_w }}", "dev_cla": "power", "unit_of_meas": "W",
                "stat_cla": "measurement"})
            yield cfg("sensor", dev, o + "_session_energy", "Session energy", {
                "stat_t": t, "val_tpl": "{{ value_json.session_wh }}", "dev_cla": "energy", "unit_of_meas": "Wh",
                "stat_cla": "total_increasing"})
            yield cfg("sensor", dev, o + "_energy", "Energy", {
                "stat_t": t, "val_tpl": "{{ value_json.energy_wh }}", "dev_cla": "energy", "unit_of_meas": "Wh",
                "stat_cla": "total_increasing"})
            yield cfg("number", dev, o + "_max", "Maximum", {
                "stat_t": t, "val_tpl": "{{ (value_json.ext_ma if value_json.ext_ma is not none "
                                        "else value_json.max_ma) / 1000 }}",
                "cmd_t": b.pre + "/limit/set", "cmd_tpl": '{"charger": %s, "a": {{ value }}, "watchdog_s": 0}' % named,
                "min": 0, "max": site.cmax[c] / 1000, "step": 1, "mode": "box", "dev_cla": "current",
                "unit_of_meas": "A"})
            yield cfg("select", dev, o + "_mode", "Mode", {
                "stat_t": t, "val_tpl": "{{ value_json.mode }}", "cmd_t": b.pre + "/mode/set",
                "cmd_tpl": '{"charger": %s, "mode": "{{ value }}"}' % named,
                "ops": ["fast", "pv", "min_pv", "off"]})
