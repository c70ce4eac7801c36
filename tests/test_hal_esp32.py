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
    assert ["WLAN.config", 1, [["authmode", 3], ["channel", 6], ["essid", "ampshare-1a2b"],
                               ["password", "installer-pw"]]] in out["calls"]
    assert ["WLAN.connect", "site-wifi", "secret-pw"] in out["calls"]
    assert run(["ap", "x", "short"])["refused"] == ["ap.password: WPA2 needs at least 8 characters"]


def test_rs485_line_on_a_uart_with_the_driver_on_only_while_sending():
    out = run(["board", {"pilot": False}], ["rs485", {"baud": 9600}], ["send", "010400000002"],
              ["recv", ["0104", ""]])
    assert calls(out, "UART") == [[2, 9600, 17, 16, 0]]  # timeout 0: a read never waits
    seq = [c for c in out["calls"] if c[0] in ("Pin.value", "UART.write") or c[:2] == ["Pin", 4]]
    assert seq == [["Pin", 4, 1, 0], ["Pin.value", 4, 1], ["UART.write", 2, "010400000002"], ["Pin.value", 4, 0]]
    assert out["tx_ms"] == 8 * 11 * 1000 // 9600 + 1  # eight 11-bit characters, then 1 ms
    assert out["recv"] == [2, 0, 0]  # an empty UART reads as 0 bytes, not None
