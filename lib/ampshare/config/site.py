# The site configuration's parser: a validated configuration (DESIGN.md) turned into the flat
# integer arrays of core.site.Site. Pure: a dict in, a Site or a ConfigError out. Only
# start-up and a new configuration need it; a running leader lets this module go.
from array import array
from micropython import const

from ampshare.core.site import MODE_MIN_PV, MODE_OFF, MODE_PV, PRIO_MAX, Site  # noqa: F401 (the model's names, here too)
from ampshare.config.units import ConfigError, ma, whole

# Sanity bounds, each with its reason.
_LIMIT_MAX_A = const(1000)  # no LV site fuse we serve is larger; keeps sums far below 2**30
_PILOT_MAX_A = const(80)  # IEC 61851-1: the control pilot cannot advertise more than 80 A
_IEC_MIN_A = const(6)  # IEC 61851-1: no less than 6 A may be advertised
_SITE_MIN_MAX_A = const(32)  # DESIGN.md: the minimum is configurable up to 32 A
_VOLT_MIN = const(100)  # below any public LV network's phase voltage
_VOLT_MAX = const(480)  # above any public LV network's phase voltage
# A leader serves up to 64 followers (DESIGN.md); so many groups and chargers also bound
# every sum the allocator forms far below 2**30 and its arrays to a few kilobytes.
_MAX_CHARGERS = const(64)
_MAX_GROUPS = const(64)
_MODBUS_ADDR_MAX = const(247)  # Modbus RTU: unicast addresses are 1..247
# turns.py: 15 min is long enough to be worth a contactor cycle and the car's restart, short
# enough that a waiting car starts within the hour.
_TURN_MIN = const(15)
_TURN_MIN_MAX = const(1440)  # a day: beyond, nobody would take a turn
# MQTT meters: each is a subscription the leader's MQTT client keeps (mqtt/client.py SUBS_MAX
# is the leader's four topics and these). A main meter and sub-distributions fit.
_MQTT_METERS_MAX = const(16)
_WIRE_ID_MAX = const(24)  # protocol.ID_MAX: a charger's id is sent to its follower
_MODBUS_ADDR = const(1)  # every supported meter leaves the factory at address 1
_MODBUS_MODEL = "sdm630"  # the meter of DESIGN.md's example, and the most common at a main fuse
# Solar surplus (surplus.py): a car starts once the surplus has covered its minimum this long,
# and stops after a deficit this long; the defaults are evcc's (1 min and 3 min).
_PV_START_S = const(60)
_PV_STOP_S = const(180)
_PV_DELAY_MAX_S = const(3600)  # beyond an hour a delay no longer follows the weather
_PV_TARGET_MAX_W = const(500_000)  # a site's whole connection, and in mW still below 2**30

# A rotation names the site phase that the charger's L1, L2, L3 are wired to.
ROTATIONS = ("L123", "L132", "L213", "L231", "L312", "L321")
UNKNOWN = const(-1)
MODES = ("fast", "pv", "min_pv", "off")
METER_SOURCES = ("modbus", "ct", "mqtt")
# An MQTT meter (docs/mqtt.md) is silent after this long without a value; the core's own
# silence rule (5 s) is its floor: the leader re-feeds the last value until timeout_s.
_MQTT_TIMEOUT_S = const(10)
_MQTT_TIMEOUT_MIN_S = const(5)
_MQTT_TIMEOUT_MAX_S = const(3600)
_PHASES = ("L1", "L2", "L3")


def _at(where, name):
    # "chargers[2]" and "max_a": "chargers[2].max_a". Built here, not written out: each written
    # ".max_a" would be one more name interned on the board.
    return where + "." + name


def _field(obj, name, where, required=True, default=None):
    if not isinstance(obj, dict):
        raise ConfigError(where, "must be an object")
    if name in obj:
        return obj[name]
    if required:
        raise ConfigError(_at(where, name), "missing required field")
    return default


def _id(obj, where, seen):
    ident = _field(obj, "id", where)
    if not isinstance(ident, str) or not ident:
        raise ConfigError(_at(where, "id"), "must be a non-empty string")
    if ident in seen:
        raise ConfigError(_at(where, "id"), "duplicate id '%s'" % ident)
    seen[ident] = len(seen)
    return ident


def _in_order(seen):
    # MicroPython's dict does not keep insertion order: rebuild the list by index.
    ids = [None] * len(seen)
    for ident, i in seen.items():
        ids[i] = ident
    return ids


def _list(cfg, name, required):
    value = _field(cfg, name, "site", required, [])
    if not isinstance(value, list):
        raise ConfigError(name, "must be a list")
    return value


def _phase_amps(value, where, lo_a, hi_a):
    # One number for every phase, or three.
    if isinstance(value, list):
        if len(value) != 3:
            raise ConfigError(where, "must be one number or three")
        return [ma(v, "%s[%d]" % (where, i), lo_a, hi_a) for i, v in enumerate(value)]
    m = ma(value, where, lo_a, hi_a)
    return [m, m, m]


def _choice(value, where, words):
    if value not in words:
        raise ConfigError(where, "'%s' is not one of %s" % (value, " ".join(words)))
    return words.index(value)


def _meters(site, cfg):
    from ampshare.meter.maps import MODELS
    seen = {}
    site.meter_source, site.meter_model, site.meter_addr, site.meter_phase = [], [], [], []
    site.meter_topic, site.meter_timeout = [], []  # an MQTT meter's topic and timeout (ms), else None
    for i, m in enumerate(_list(cfg, "meters", False)):
        where = "meters[%d]" % i
        _id(m, where, seen)
        source = _choice(_field(m, "source", where), _at(where, "source"), METER_SOURCES)
        model, addr = None, None
        if METER_SOURCES[source] == "modbus":
            model = _field(m, "model", where, False, _MODBUS_MODEL)
            if model not in MODELS:
                raise ConfigError(_at(where, "model"), "'%s' is not one of %s" % (model, ", ".join(sorted(MODELS))))
            addr = whole(_field(m, "address", where, False, _MODBUS_ADDR), _at(where, "address"), 1, _MODBUS_ADDR_MAX)
        topic, timeout = None, None
        if METER_SOURCES[source] == "mqtt":
            topic = _field(m, "topic", where)
            if not isinstance(topic, str) or not 0 < len(topic) <= 200 or "+" in topic or "#" in topic or \
                    "\x00" in topic:
                raise ConfigError(_at(where, "topic"), "an exact MQTT topic, 1..200 characters, no wildcard (+ #)")
            if len(site.meter_topic) - site.meter_topic.count(None) >= _MQTT_METERS_MAX:
                raise ConfigError(_at(where, "source"), "at most %d MQTT meters (each is a subscription the leader's "
                                                     "client keeps)" % _MQTT_METERS_MAX)
            timeout = whole(_field(m, "timeout_s", where, False, _MQTT_TIMEOUT_S), _at(where, "timeout_s"),
                            _MQTT_TIMEOUT_MIN_S, _MQTT_TIMEOUT_MAX_S) * 1000
        site.meter_topic.append(topic)
        site.meter_timeout.append(timeout)
        # A 1-phase meter names the site phase it is on (L1 unless told).
        one = model is not None and MODELS[model][1] == 1
        site.meter_phase.append(_choice(_field(m, "phase", where, False, "L1"), _at(where, "phase"), _PHASES)
                                if one else None)
        site.meter_source.append(METER_SOURCES[source])
        site.meter_model.append(model)
        site.meter_addr.append(addr)
    site.meter_ids = _in_order(seen)
    return seen


def _groups(site, cfg, meters):
    raw = _list(cfg, "groups", True)
    if not raw:
        raise ConfigError("groups", "needs at least one group")
    if len(raw) > _MAX_GROUPS:
        raise ConfigError("groups", "%d groups; at most %d" % (len(raw), _MAX_GROUPS))
    seen = {}
    for i, g in enumerate(raw):
        _id(g, "groups[%d]" % i, seen)
    parent = [UNKNOWN] * len(raw)
    for i, g in enumerate(raw):
        p = _field(g, "parent", "groups[%d]" % i, False)
        if p is not None:
            if p not in seen:
                raise ConfigError("groups[%d].parent" % i, "unknown parent '%s'" % p)
            parent[i] = seen[p]
    order = _topological(raw, parent)
    # Renumber so that parents come first.
    new = [0] * len(raw)
    for pos, old in enumerate(order):
        new[old] = pos
    site.group_ids = [raw[old]["id"] for old in order]
    site.parent = array("h", [UNKNOWN if parent[o] < 0 else new[parent[o]] for o in order])
    site.limit = array("i", [0] * (3 * len(raw)))
    site.reserve = array("i", [0] * (3 * len(raw)))
    site.gmeter = array("h", [UNKNOWN] * len(raw))
    site.pv_target = array("i", [0] * len(raw))  # W the metered group may import for its PV chargers
    site.unbalance = array("i", [UNKNOWN] * len(raw))  # mA between its phases, or none
    used_by = {}
    for pos, old in enumerate(order):
        _group(site, raw[old], "groups[%d]" % old, pos, meters, used_by)
    _warn_child_limits(site)


def _topological(raw, parent):
    # Parents before children; a cycle is refused, named by its ids.
    order, state = [], [0] * len(raw)  # 0 unseen, 1 on the path, 2 placed
    for start in range(len(raw)):
        path = []
        g = start
        while g >= 0 and state[g] == 0:
            state[g] = 1
            path.append(g)
            g = parent[g]
        if g >= 0 and state[g] == 1:
            ring = path[path.index(g):] + [g]
            raise ConfigError("groups[%d].parent" % g,
                              "cycle " + " -> ".join(raw[x]["id"] for x in ring))
        for x in reversed(path):
            state[x] = 2
            order.append(x)
    return order


def _group(site, g, where, pos, meters, used_by):
    limit = _phase_amps(_field(g, "limit_a", where), _at(where, "limit_a"), 0, _LIMIT_MAX_A)
    meter = _field(g, "meter", where, False)
    if meter is not None:
        if meter not in meters:
            raise ConfigError(_at(where, "meter"), "meter '%s' is not defined" % meter)
        if meter in used_by:
            raise ConfigError(_at(where, "meter"),
                              "meter '%s' already measures group '%s'" % (meter, used_by[meter]))
        used_by[meter] = g["id"]
        site.gmeter[pos] = meters[meter]
        one = site.meter_phase[meters[meter]]
        if one is not None and any(limit[p] for p in range(3) if p != one):
            # A 1-phase meter leaves two phases unmeasured: they would read 0 A, and the
            # chargers' draw there would be taken for export.
            raise ConfigError(_at(where, "meter"), "meter '%s' measures L%d only: the group's other phases need "
                              "limit_a 0 (or a 3-phase meter)" % (meter, one + 1))
    # Metered: the worst case when the meter is lost is the whole limit (its chargers pause).
    # Unmetered: only its chargers are counted unless the installer names other load.
    default = limit if meter is not None else [0, 0, 0]
    res = _field(g, "reserve_a", where, False)
    reserve = default if res is None else _phase_amps(res, _at(where, "reserve_a"), 0, _LIMIT_MAX_A)
    for p in range(3):
        site.limit[pos * 3 + p] = limit[p]
        site.reserve[pos * 3 + p] = reserve[p]
    # The import a PV charger's surplus is measured against: 0 keeps the group at zero net
    # import; negative keeps that much export (a feed-in tariff), positive allows that import.
    site.pv_target[pos] = whole(_field(g, "pv_target_w", where, False, 0), _at(where, "pv_target_w"),
                               -_PV_TARGET_MAX_W, _PV_TARGET_MAX_W)
    unb = _field(g, "unbalance_limit_a", where, False)
    if unb is not None:
        # Grid rules on the difference between phases (Germany 20 A, Austria and Switzerland 16 A).
        site.unbalance[pos] = ma(unb, _at(where, "unbalance_limit_a"), 1, _LIMIT_MAX_A)


def _warn_child_limits(site):
    for g in range(len(site.group_ids)):
        up = site.parent[g]
        if up < 0:
            continue
        for p in range(3):
            if site.limit[g * 3 + p] > site.limit[up * 3 + p]:
                site.warnings.append(
                    "groups.%s.limit_a: L%d is above its parent '%s'; the parent's fuse binds"
                    % (site.group_ids[g], p + 1, site.group_ids[up]))
                break


def _chargers(site, cfg, min_ma):
    raw = _list(cfg, "chargers", False)
    n = len(raw)
    if n > _MAX_CHARGERS:
        raise ConfigError("chargers", "%d chargers; at most %d" % (n, _MAX_CHARGERS))
    site.charger_ids = []
    site.cgroup = array("h", [0] * n)
    site.cmin = array("i", [0] * n)
    site.cmax = array("i", [0] * n)
    site.cphases = bytearray(n)
    site.cwire = array("b", [UNKNOWN] * (3 * n))
    site.cprio = bytearray(n)
    site.cmode = bytearray(n)
    site.cswitch = bytearray(n)
    groups = {gid: i for i, gid in enumerate(site.group_ids)}
    seen = {}
    for i, c in enumerate(raw):
        _charger(site, c, "chargers[%d]" % i, i, seen, groups, min_ma)
    site.charger_ids = _in_order(seen)


def _charger(site, c, where, i, seen, groups, min_ma):
    if len(_id(c, where, seen).encode()) > _WIRE_ID_MAX:
        raise ConfigError(_at(where, "id"), "longer than %d bytes (it travels in the PAIR message)" % _WIRE_ID_MAX)
    gid = _field(c, "group", where)
    if gid not in groups:
        raise ConfigError(_at(where, "group"), "unknown group '%s'" % gid)
    site.cgroup[i] = groups[gid]
    lo = min_ma
    own_min = _field(c, "min_a", where, False)
    if own_min is not None:
        lo = max(lo, ma(own_min, _at(where, "min_a"), _IEC_MIN_A, _PILOT_MAX_A))
    hi = _max_current(c, where, "max_a", lo, True)
    conn = _max_current(c, where, "connector_max_a", lo, False)
    site.cmin[i] = lo
    site.cmax[i] = hi if conn is None else min(hi, conn)
    phases = _field(c, "phases", where, False, 3)
    if isinstance(phases, bool) or not isinstance(phases, int) or phases not in (1, 3):
        raise ConfigError(_at(where, "phases"), "must be 1 or 3")
    site.cphases[i] = phases
    rot = _field(c, "rotation", where, False, "unknown")
    if rot != "unknown":
        r = ROTATIONS[_choice(rot, _at(where, "rotation"), ROTATIONS + ("unknown",))]
        for k in range(3):
            site.cwire[i * 3 + k] = ord(r[k + 1]) - ord("1")
    site.cprio[i] = whole(_field(c, "priority", where, False, 0), _at(where, "priority"), 0, PRIO_MAX)
    site.cmode[i] = _choice(_field(c, "mode", where, False, "fast"), _at(where, "mode"), MODES)
    sw = _field(c, "phase_switching", where, False, False)
    if not isinstance(sw, bool):
        raise ConfigError(_at(where, "phase_switching"), "must be true or false")
    if sw and phases != 3:
        raise ConfigError(_at(where, "phase_switching"), "a 1-phase charger has no phases to switch")
    if sw and site.cmode[i] not in (MODE_PV, MODE_MIN_PV):
        site.warnings.append("%s.phase_switching: only a pv or min_pv charger is switched; this one "
                             "keeps its three phases" % where)
    site.cswitch[i] = sw


def _warn_pv_unmetered(site):
    for c, cid in enumerate(site.charger_ids):
        if site.cmode[c] in (MODE_PV, MODE_MIN_PV) and site.metered_above(c) < 0:
            site.warnings.append("chargers.%s.mode: no metered group above it measures a surplus; "
                                 "it charges at its minimum (min_pv) or not at all (pv)" % cid)


def _max_current(c, where, name, lo, required):
    value = _field(c, name, where, required)
    if value is None:
        return None
    m = ma(value, _at(where, name), 0, _PILOT_MAX_A)
    if m < lo:
        raise ConfigError(_at(where, name),
                          "%s A is below the minimum current %d.%d A" % (value, lo // 1000, lo % 1000 // 100))
    return m


def parse(cfg):
    """Validate a configuration dict; return a Site (with .warnings) or raise ConfigError."""
    if not isinstance(cfg, dict):
        raise ConfigError("site", "must be a JSON object")
    version = _field(cfg, "version", "site")
    if isinstance(version, bool) or not isinstance(version, int) or version != 1:
        raise ConfigError("version", "%s is not a supported version (1)" % (version,))
    site = Site()
    site.voltage = whole(_field(cfg, "voltage_v", "site", False, 230), "voltage_v", _VOLT_MIN, _VOLT_MAX)
    site.min_ma = ma(_field(cfg, "min_current_a", "site", False, _IEC_MIN_A), "min_current_a",
                     _IEC_MIN_A, _SITE_MIN_MAX_A)
    # When not every car can charge, the paused ones take turns on this interval (turns.py).
    site.turn_ms = whole(_field(cfg, "turn_interval_min", "site", False, _TURN_MIN), "turn_interval_min",
                        1, _TURN_MIN_MAX) * 60_000
    site.pv_start_ms = whole(_field(cfg, "pv_start_s", "site", False, _PV_START_S), "pv_start_s",
                            0, _PV_DELAY_MAX_S) * 1000
    site.pv_stop_ms = whole(_field(cfg, "pv_stop_s", "site", False, _PV_STOP_S), "pv_stop_s",
                           0, _PV_DELAY_MAX_S) * 1000
    meters = _meters(site, cfg)
    _groups(site, cfg, meters)
    _chargers(site, cfg, site.min_ma)
    _warn_pv_unmetered(site)
    named = [m for m in site.gmeter if m >= 0]
    for i, mid in enumerate(site.meter_ids):
        if i not in named:
            site.warnings.append("meters.%s: no group names this meter; it is not used" % mid)
    return site


class SiteHolder:
    """The configuration in force. A refused proposal leaves it exactly as it was."""

    def __init__(self, cfg):
        self.site = parse(cfg)

    def propose(self, cfg):
        site = parse(cfg)  # raises before anything changes
        self.site = site
        return site.warnings
