"""The esp32 board layer, run in the unix port over fake machine and network modules."""
import json
import subprocess
from fractions import Fraction

import pytest

from vm import ROOT, micropython, mp_env


def run(*actions):
    env = mp_env()
    env["MICROPYPATH"] = str(ROOT / "tests" / "mp" / "fakes") + ":" + env["MICROPYPATH"]
    proc = subprocess.run([micropython(), str(ROOT / "tests" / "mp" / "hal_esp32.py")], input=json.dumps(actions),
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def calls(out, name):
    return [c[1:] for c in out["calls"] if c[0] == name]


def amps_read(u16):
    """What a car reads from a duty_u16, by IEC 61851-1 (no rounding)."""
    pct = Fraction(u16 * 100, 65535)
    return pct * Fraction(6, 10) if pct <= 85 else (pct - 64) * Fraction(5, 2)


def test_the_pilot_starts_paused_at_1_khz_on_its_pins():
    out = run(["board", {}])
    assert calls(out, "PWM") == [[25, 1000, 65535]]  # 100 %: nothing offered until told
    assert calls(out, "ADC") == [[36, 3]]  # ADC1, 11 dB: the full 0-3.3 V span
    assert [26, 1, 0] in calls(out, "Pin") and [27, 1, 0] in calls(out, "Pin")  # both open


@pytest.mark.parametrize("amps,u16", [(6, 6553), (16, 17471), (32, 34949), (63, 58457)])
def test_duty_for_6_16_32_and_63_a(amps, u16):
    # 6 A = 10 %, 16 A = 26.66 %, 32 A = 53.33 % (A / 0.6), 63 A = 89.2 % (A / 2.5 + 64),
    # each floored to 0.01 % and then to 1/65535.
    out = run(["board", {}], ["amps", amps])
    assert calls(out, "PWM.duty_u16") == [[25, u16]]
    assert amps - Fraction(1, 10) < amps_read(u16) <= amps  # never more than offered


def test_a_pause_is_100_percent_and_an_unchanged_duty_is_not_written_again():
    out = run(["board", {}], ["amps", 16], ["amps", 16], ["amps", 3], ["duty", 10000])
    assert calls(out, "PWM.duty_u16") == [[25, 17471], [25, 65535]]


def test_contactor_and_phase_relay_pins():
    out = run(["board", {"pins": {"contactor": 4, "phase_relay": 5}}],
              ["contactor", True], ["relay", True], ["contactor", False])
    assert calls(out, "Pin.value") == [[4, 1], [5, 1], [4, 0]]


def test_pilot_levels_from_the_adc_high_and_low_halves():
    # +6 V (state C) high, -12 V low: 1650 + 6000 / 8 = 2400 mV, 1650 - 12000 / 8 = 150 mV.
    reads = [2_400_000] * 20 + [150_000] * 28
    out = run(["board", {}], ["sample", reads])
    assert out["samples"] == [[6000, -12000]]


def test_an_adc2_pin_is_refused_for_the_pilot():
    out = run(["board", {"pins": {"pilot_adc": 4}}])
    assert out["refused"] == ["pins.pilot_adc: GPIO 4 is not on ADC1 (32-39); ADC2 stops working while Wi-Fi runs"]
    assert calls(out, "PWM") == []  # nothing driven


def test_watchdog_started_and_fed():
    out = run(["board", {}], ["watchdog", 5000], ["feed"], ["feed"])
    assert calls(out, "WDT") == [[5000]] and len(calls(out, "WDT.feed")) == 2


def test_access_point_is_wpa2_and_station_connects_without_waiting():
    out = run(["ap", "ampshare-1a2b", "installer-pw"], ["sta", "site-wifi", "secret-pw"])
    assert ["WLAN.config", 1, [["authmode", 3], ["channel", 6], ["essid", "ampshare-1a2b"], ["max_clients", 10],
                               ["password", "installer-pw"]]] in out["calls"]
    assert ["WLAN.connect", "site-wifi", "secret-pw"] in out["calls"]
    assert run(["ap", "x", "short"])["refused"] == ["ap.password: WPA2 needs at least 8 characters"]


def test_rs485_line_on_a_uart_with_the_driver_on_only_while_sending():
    out = run(["board", {"pilot": False}], ["rs485", {"baud": 9600}], ["send", "010400000002"],
              ["recv", ["0104", ""]])
    assert calls(out, "UART") == [[2, 9600, 17, 16, 0]]  # timeout 0: a read never waits
    seq = [c for c in out["calls"] if c[0] in ("Pin.value", "UART.write", "UART.flush") or c[:2] == ["Pin", 4]]
    # The driver goes off only once the UART has sent the last bit, and at once after.
    assert seq == [["Pin", 4, 1, 0], ["Pin.value", 4, 1], ["UART.write", 2, "010400000002"], ["UART.flush", 2],
                   ["Pin.value", 4, 0]]
    assert out["recv"] == [2, 0, 0]  # an empty UART reads as 0 bytes, not None


def test_ct_clamps_sampled_on_adc1_in_frame_order():
    import math
    n, ua = 400, 4000  # 10 cycles at 2 kHz; 4 mA per step
    amps = [20.0, 10.0, 5.0]
    samples = []
    for f in range(n):
        for k, a in enumerate(amps):  # one frame: L1 L2 L3, in the order the pins are read
            peak_steps = a * math.sqrt(2) * 1e6 / ua
            samples.append(round(32768 + peak_steps * math.sin(2 * math.pi * f / 40 + k)))
    out = run(["board", {"pilot": False}], ["ct", {"pins": [39, 34, 35], "n": n, "ua_per_count": ua,
                                                   "samples": samples}])
    assert calls(out, "ADC") == [[39, 3], [34, 3], [35, 3]]
    err, ma, left = out["ct"]
    assert err == 0 and left == 0  # every sample taken, none more
    assert all(abs(m - a * 1000) <= a * 1000 * 0.02 for m, a in zip(ma, amps)), ma


def _sine_frames(n, amps, ua, clip=False):
    import math
    out = []
    for f in range(n):
        for k, a in enumerate(amps):
            peak = a * math.sqrt(2) * 1e6 / ua * (10 if clip else 1)  # clip: the clamp's range ten times over
            v = round(32768 + peak * math.sin(2 * math.pi * f / 40 + 2 * math.pi * k / 3))
            out.append(min(65535, max(0, v)))
    return out


CT_SITE = {"version": 1, "groups": [{"id": "main", "limit_a": 40, "meter": "house"}],
           "meters": [{"id": "house", "source": "ct"}],
           "chargers": [{"id": "wb1", "group": "main", "max_a": 16, "phases": 3}]}


def _leader_ct(tmp_path, ct, samples):
    # tests/mp/leader_ct.py on the fake ESP32: one window through the clamps into the core.
    req = {"dir": str(tmp_path), "site": CT_SITE, "ct": ct, "samples": samples}
    env = mp_env()
    env["MICROPYPATH"] = str(ROOT / "tests" / "mp" / "fakes") + ":" + env["MICROPYPATH"]
    return subprocess.run([micropython(), str(ROOT / "tests" / "mp" / "leader_ct.py")], input=json.dumps(req),
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=30)


def _ct_out(proc):
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("clip", [False, True])
def test_a_leaders_ct_clamps_feed_its_core_and_a_clipped_window_does_not(tmp_path, clip):
    ua = 4000
    out = _ct_out(_leader_ct(tmp_path, {"pins": [39, 34, 35], "phases": [{"ua_per_count": ua}] * 3},
                             _sine_frames(400, [20.0, 10.0, 5.0], ua, clip)))
    if clip:
        assert (out["good"], out["errors"], out["ok"]) == (0, 1, 0), out
        assert out["health"]["house"]["errors"] == {"clipped": 1, "no voltage reference": 0}
        assert out["health"]["house"]["last_error"] == "L1: clipped"
    else:
        assert out["good"] == 1 and out["ok"] == 1, out
        assert all(abs(m - a) <= a * 0.02 for m, a in zip(out["meter"], [20000, 10000, 5000])), out


def test_a_leaders_ct_clamps_count_a_missing_voltage_reference_as_such(tmp_path):
    # Voltage mode with its reference unwired (flat): no reading, counted under its own reason.
    ua = 4000
    ct = {"pins": [39, 34, 35, 36, 32, 33], "mode": "voltage", "phases": [{"ua_per_count": ua}] * 3,
          "voltages": [{"uv_per_count": 10000}] * 3}
    out = _ct_out(_leader_ct(tmp_path, ct, _sine_frames(400, [20.0, 10.0, 5.0, 0, 0, 0], ua)))
    assert (out["good"], out["ok"]) == (0, 0), out
    assert out["health"]["house"]["errors"] == {"clipped": 0, "no voltage reference": 1}, out
    assert out["health"]["house"]["last_error"] == "L1: no voltage reference"


def test_a_leaders_ct_clamps_on_fewer_than_three_phases_are_refused_by_name(tmp_path):
    # They would feed the core three currents from one: the clamp task died on it, and the
    # board with it.
    proc = _leader_ct(tmp_path, {"pins": [39], "phases": [{"ua_per_count": 4000}]}, [32768] * 400)
    assert proc.returncode != 0 and "settings.ct.phases: the site's ct meter measures three phases" in proc.stdout + proc.stderr


def _build(tmp_path, settings):
    env = mp_env()
    env["MICROPYPATH"] = str(ROOT / "tests" / "mp" / "fakes") + ":" + env["MICROPYPATH"]
    settings = dict({"hal": "esp32", "state_dir": str(tmp_path), "bind": "127.0.0.1", "port_follower": 27981,
                     "port_leader": 27980}, **settings)
    proc = subprocess.run([micropython(), str(ROOT / "tests" / "mp" / "start_esp32.py")], input=json.dumps(settings),
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_an_esp32_follower_takes_its_uid_from_the_wifi_mac(tmp_path):
    assert _build(tmp_path, {"role": "follower"}) == {"built": "FollowerApp", "uid": "246f28010203"}


def test_an_esp32_leader_refuses_a_modbus_meter_with_no_line(tmp_path):
    (tmp_path / "site.json").write_text(json.dumps(
        {"version": 1, "groups": [{"id": "main", "limit_a": 40, "meter": "grid"}],
         "meters": [{"id": "grid", "source": "modbus"}], "chargers": [{"id": "a", "group": "main", "max_a": 16}]}))
    assert _build(tmp_path, {"role": "leader"})["refused"].startswith("settings.rs485:")


def test_a_site_naming_a_meter_the_board_does_not_read_is_found_before_it_is_saved():
    # The page's PUT /api/site asks this before saving (web/server.py): saved, such a site
    # would stop the ESP32 leader at every start, and main.py would reset it for ever.
    code = """
import json
from ampshare.config.site import parse
from ampshare.config.settings import unwired
site = parse({"version": 1, "groups": [{"id": "main", "limit_a": 40, "meter": "grid"},
              {"id": "sub", "parent": "main", "limit_a": 20, "meter": "clamp"}],
              "meters": [{"id": "grid", "source": "modbus"}, {"id": "clamp", "source": "ct"}],
              "chargers": [{"id": "a", "group": "sub", "max_a": 16}]})
base = {"hal": "esp32", "rs485": {"baud": 9600}, "ct": {"pins": [36, 39, 34]}, "mqtt": None}
out = []
for change in ({}, {"rs485": None}, {"ct": None}, {"hal": "unix", "rs485": None, "ct": None}):
    out.append(unwired(dict(base, **change), site))
print(json.dumps(out))
"""
    p = subprocess.run([micropython(), "-c", code], env=mp_env(), cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr + p.stdout
    assert json.loads(p.stdout) == [None, [0, "modbus", "rs485"], [1, "ct", "ct"], None]


def test_mqtt_is_not_turned_off_under_a_sites_mqtt_meter(tmp_path):
    # DELETE /api/mqtt on an ESP32 leader whose site reads a meter over MQTT: saved, the leader
    # would refuse to start on it at every boot. Refused by name; settings.json unchanged.
    settings = {"role": "leader", "code": "label-code", "hal": "esp32", "mqtt": {"host": "10.0.0.2"}}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    code = """
import json
from ampshare.config.site import parse
from ampshare.web.server import Web

class App:
    site = parse({"version": 1, "groups": [{"id": "main", "limit_a": 40, "meter": "m"}],
                  "meters": [{"id": "m", "source": "mqtt", "topic": "house/grid"}],
                  "chargers": [{"id": "a", "group": "main", "max_a": 16}]})
    def persist(self, fn, *a):
        fn(*a)
        return True
    def restart_after(self, ms):
        pass

class W(Web):
    def __init__(self):
        self.app = App()
        self._wiring = {"hal": "esp32", "rs485": None, "ct": None, "mqtt": {"host": "10.0.0.2"}}
    def _event(self, *a):
        pass

w = W()
print(json.dumps([w._save_mqtt(None), w._save_mqtt({"host": "10.0.0.3"})]))
"""
    p = subprocess.run([micropython(), "-c", code], env=mp_env(), cwd=tmp_path, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr + p.stdout
    off, moved = json.loads(p.stdout.strip().splitlines()[-1])
    assert off[1] == 400 and off[0]["field"] == "mqtt" and "MQTT meter" in off[0]["reason"], off
    assert moved["saved"] is True  # another broker is fine: the meter still has MQTT
    assert json.loads((tmp_path / "settings.json").read_text())["mqtt"] == {"host": "10.0.0.3"}


def test_the_pair_button_reads_pressed_when_pulled_to_ground_and_the_led_is_written_on_change():
    out = run(["board", {}], ["button", 1], ["button", 0], ["led", True], ["led", True], ["led", False])
    assert [0, 0, 2] in calls(out, "Pin")  # GPIO 0 (BOOT) as an input with its pull-up
    assert out["pressed"] == [False, True]
    assert calls(out, "Pin.value") == [[2, 1], [2, 0]]  # GPIO 2's LED, only when it changes
