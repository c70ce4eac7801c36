# What a leader and its followers tell each other, as values: the flag bits of a STATE, a
# COMMAND and a HELLO. The cores give them their meaning; wire/ packs them into datagrams.
from micropython import const

# STATE flags: the follower's condition
AT_FALLBACK = const(1)
CONTACTOR = const(2)
ONE_PHASE = const(4)  # its phase relay is in the 1-phase position
SWITCHING = const(8)  # a 3<->1 switch is under way
FLASH_FAILED = const(16)  # it could not save to flash (keys, boot counter): shown on the page
# It measures no current (a board without current sensing): its measured currents read 0. A
# flag, not a value: a leader that does not know it reads 0 A, as before, and credits nothing.
UNMEASURED = const(32)
# STATE errors
ERR_DIODE = const(1)  # negative half not near -12 V: no diode, or a short
ERR_PILOT = const(2)  # pilot in E or F
# COMMAND flags
IDENTIFY = const(1)  # blink the follower's LED: lets an installer find a unit
# Bits 1-3: the charger's own L1, L2, L3 that the leader does not count it on (its car draws
# on fewer phases). A car arriving there must wait for a COMMAND that counts them all.
UNCOUNTED_SHIFT = const(1)
# HELLO flags
CAN_SWITCH = const(1)
PAIRED = const(2)
