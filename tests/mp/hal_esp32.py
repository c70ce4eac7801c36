# Drives the esp32 board layer over the fake machine and network modules; prints every call
# as one JSON line. stdin: a JSON list of actions (this unix-port build crashes on an
# argument longer than about 256 characters).
import json
import sys

import machine
from ampshare.core import pilot
from ampshare.hal import esp32
from ampshare.config.units import ConfigError

out = {}
for act in json.loads(sys.stdin.read()):
    what = act[0]
    try:
        if what == "board":
            b = esp32.Board(**act[1])
        elif what == "amps":
            b.set_duty(pilot.duty_for(act[1] * 1000))
        elif what == "duty":
            b.set_duty(act[1])
        elif what == "contactor":
            b.set_contactor(act[1])
        elif what == "relay":
            b.set_phase_relay(act[1])
        elif what == "led":
            b.set_led(act[1])
        elif what == "button":
            machine.LEVELS[0] = act[1]
            out.setdefault("pressed", []).append(b.pair_button())
        elif what == "sample":
            machine.ADC_UV[:] = act[1]
            out.setdefault("samples", []).append(list(b.sample_pilot()))
        elif what == "watchdog":
            b.start_watchdog(act[1])
        elif what == "feed":
            b.feed()
        elif what == "rs485":
            line = b.serial(act[1])
        elif what == "send":
            line.send(bytes.fromhex(act[1]))
        elif what == "recv":
            machine.UART.RX[:] = [bytes.fromhex(h) for h in act[1]]
            buf = bytearray(16)
            got = [line.readinto(memoryview(buf)) for _ in range(len(act[1]) + 1)]
            out["recv"] = got
        elif what == "ct":
            import asyncio
            from array import array

            from ampshare.meter import ct
            machine.ADC_U16[:] = act[1]["samples"]
            n = act[1]["n"]
            sampler = b.ct_sampler(act[1]["pins"], 2000)
            meter = ct.Ct([{"ua_per_count": act[1]["ua_per_count"]}] * len(act[1]["pins"]))
            buf = array("H", bytes(2 * n * meter.width))
            asyncio.run(sampler.window(buf, n, n // 10))
            out["ct"] = [meter.read(buf, n), list(meter.ma), len(machine.ADC_U16)]
        elif what == "ap":
            esp32.access_point(act[1], act[2])
        elif what == "sta":
            esp32.station(act[1], act[2])
    except ConfigError as e:
        out.setdefault("refused", []).append(str(e))
out["calls"] = machine.CALLS
print(json.dumps(out))
