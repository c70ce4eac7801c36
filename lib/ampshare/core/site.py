# The site as the allocator sees it: flat integer arrays indexed by group, charger and meter,
# filled by the parser (config/site.py). Kept apart from the parser so that a running leader holds
# only this.
from array import array

from micropython import const

PRIO_MAX = const(9)  # ten levels are plenty and keep the sort key small
MODE_PV = const(1)  # indices in site.MODES
MODE_MIN_PV = const(2)
MODE_OFF = const(3)


class Site:
    """Everything the allocator needs, as arrays indexed by group, charger and meter.

    Groups are stored parents first, so a reverse walk visits children before parents.
    A phase limit sits at [group * 3 + site_phase]; a charger's wiring at
    [charger * 3 + its_phase] holds the site phase (0..2) or -1 when unknown.
    """

    # Filled in by the parser (config/site.py). Bare annotations: the board never evaluates
    # them and makes no attribute of them (mpy-cross keeps one line-number byte each).
    voltage: int
    min_ma: int
    turn_ms: int
    pv_start_ms: int
    pv_stop_ms: int
    group_ids: list
    parent: array
    limit: array
    reserve: array
    gmeter: array
    pv_target: array
    unbalance: array
    charger_ids: list
    cgroup: array
    cmin: array
    cmax: array
    cphases: bytearray
    cwire: array
    cprio: bytearray
    cmode: bytearray
    cswitch: bytearray
    meter_ids: list
    meter_source: list
    meter_model: list
    meter_addr: list
    meter_phase: list
    meter_topic: list
    meter_timeout: list

    def __init__(self):
        self.warnings = []

    def has_pv(self):
        for m in self.cmode:
            if m == MODE_PV or m == MODE_MIN_PV:
                return True
        return False

    def metered_above(self, c):
        """The nearest group above charger c with a meter (where its surplus is measured), or -1."""
        g = self.cgroup[c]
        while g >= 0 and self.gmeter[g] < 0:
            g = self.parent[g]
        return g

    def compact(self):
        """Copies every array and list, to be called once the parser's garbage is collected.

        The collector never moves a block and fills the lowest hole that fits: the parser
        leaves this site's pieces scattered between its freed garbage, and the copies land
        low and together, so the originals leave long runs free for the role's larger
        buffers (a grown qstr pool on a leader takes 8 KB in one piece).
        """
        for name, v in self.__dict__.items():
            if isinstance(v, (array, bytearray, list)):
                setattr(self, name, v[:])
