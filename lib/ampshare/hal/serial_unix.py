# A serial line on the unix port: a tty (a USB RS485 adapter, or one end of a socat pty pair
# in the tests) in raw mode, read without blocking. The same interface as the ESP32's UART
# (hal/esp32.py): send and readinto.
import termios

_VTIME = 5  # indices into the termios c_cc list (Linux)
_VMIN = 6
# The port's termios module lacks some rates: Linux's values (termios-baud.h) stand in. 2400 is
# the SDM120's factory rate.
BAUDS = {2400: getattr(termios, "B2400", 0o13), 4800: getattr(termios, "B4800", 0o14), 9600: termios.B9600,
         19200: getattr(termios, "B19200", 0o16), 38400: getattr(termios, "B38400", 0o17),
         57600: termios.B57600, 115200: termios.B115200}


class Serial:
    def __init__(self, path, baud=9600):
        if baud not in BAUDS:
            raise ValueError("baud %d not supported here" % baud)
        self.f = open(path, "r+b")
        fd = self.f.fileno()
        termios.setraw(fd)
        attr = termios.tcgetattr(fd)
        attr[4] = attr[5] = BAUDS[baud]
        cc = attr[6]
        cc[_VMIN] = 0  # a read returns what is there, at once: never blocks the event loop
        cc[_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attr)
        self.baud = baud

    def send(self, buf):
        self.f.write(buf)  # a USB adapter switches its driver by itself

    def readinto(self, mv):
        n = self.f.readinto(mv)
        return n or 0

    def close(self):
        self.f.close()
