# A stand-in for the ESP32's network module: every call is logged for the test to check.
from machine import CALLS

AP_IF = 1
STA_IF = 0
AUTH_WPA2_PSK = 3


class WLAN:
    def __init__(self, kind):
        self.kind = kind
        CALLS.append(["WLAN", kind])

    def active(self, on):
        CALLS.append(["WLAN.active", self.kind, on])

    def config(self, *ask, **kw):
        if ask == ("mac",):
            return b"\x24\x6f\x28\x01\x02\x03"  # an Espressif MAC
        CALLS.append(["WLAN.config", self.kind, sorted(kw.items())])

    def connect(self, ssid, password):
        CALLS.append(["WLAN.connect", ssid, password])

    def ifconfig(self):
        return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "192.168.4.1")  # the AP's defaults

    def scan(self):
        CALLS.append(["WLAN.scan", self.kind])
        return [(b"home", b"\x00" * 6, 1, -48, 3, False)]
