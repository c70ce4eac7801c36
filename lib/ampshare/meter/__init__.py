# The site's meters: pure decoders (modbus.py frames, maps.py register maps, ct.py RMS) beside
# their shells (rtu.py the RTU master, poll.py polling, tasks.py the leader's meter tasks).
from micropython import const

METER_MS = const(1000)  # DESIGN.md: meters are read every second
