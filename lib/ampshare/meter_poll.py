# One Modbus meter on a line: each poll reads its register blocks, decodes them and checks
# that the currents are ones a healthy meter at this fuse could report. Failures are counted
# by kind; the caller feeds only good readings to the leader core, whose own timer makes a
# meter without one for 5 s silent (DESIGN.md).
from array import array

from ampshare import meters
from ampshare import modbus as M

_COUNT_MAX = 0x3FFFFFFF


class ModbusMeter:
    def __init__(self, master, model, unit, max_ma):
        if model not in meters.MODELS:
            raise ValueError("unknown meter model '%s'" % model)
        self.fc, self.phases, self.fields = meters.MODELS[model]
        self.blocks = meters.blocks(self.fields)
        self.master = master
        self.unit = unit
        # Beyond this a reading is a fault, not a load: twice the fuse trips it within seconds.
        self.max_ma = max_ma
        self.reading = meters.Reading()
        self.errors = array("i", [0] * len(M.ERRORS))
        self.good = 0
        self.last_error = None

    async def poll(self):
        """The fresh Reading, or ModbusError (counted)."""
        r = self.reading
        r.present = 0
        try:
            for start, count in self.blocks:
                frame = await self.master.read(self.unit, self.fc, start, count)
                meters.decode(self.fields, start, count, frame, r)
            r.signed_currents()
            for k in range(self.phases):
                if abs(r.values[meters.I1 + k]) > self.max_ma:
                    raise M.ModbusError(M.E_IMPLAUSIBLE, "L%d beyond twice the fuse" % (k + 1))
        except M.ModbusError as e:
            if self.errors[e.kind] < _COUNT_MAX:
                self.errors[e.kind] += 1
            self.last_error = e
            raise
        if self.good < _COUNT_MAX:
            self.good += 1
        return r

    def currents(self):
        """(l1, l2, l3) mA of the last good reading; a 1-phase meter's other phases are 0."""
        v = self.reading.values
        return (v[meters.I1], v[meters.I2] if self.phases == 3 else 0, v[meters.I3] if self.phases == 3 else 0)
