"""A week on the ESP32's clock: its ticks wrap at 2**30 and compare only within 6.2 days."""
import json
import subprocess

from vm import ROOT, micropython, mp_env


def test_a_week_idle_on_the_esp32_clock_changes_nothing():
    env = mp_env()
    proc = subprocess.run([micropython(), str(ROOT / "tests" / "mp" / "esp32_clock.py")], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["duty_before"] == 10000  # nobody there: nothing offered
    assert out["offered_after_12_s"] == 16000  # a car after a week charges at once
    assert not out["pair_accepted"]  # the pairing window stays closed
    assert 7 * 86400 - 5 <= out["uptime_s"] <= 7 * 86400 + 12  # counted, not wrapped
    # The leader after a week: it lowers at once, and repeats the unconfirmed decrease.
    assert out["lowered"] == 22000
    assert out["resent_within_400_ms"]
