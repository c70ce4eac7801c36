"""The application's release of start-up modules."""
import json
import subprocess

from vm import ROOT, micropython, mp_env


def test_release_keeps_a_module_a_running_one_holds_and_drops_the_rest():
    proc = subprocess.run([micropython(), str(ROOT / "tests" / "mp" / "release.py")], capture_output=True,
                          text=True, env=mp_env(), cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out == {"modbus_kept": True, "settings_gone": True, "same_class": True}


def test_a_flash_that_refuses_every_write_is_counted_and_shown_not_a_reset_loop():
    proc = subprocess.run([micropython(), str(ROOT / "tests" / "mp" / "flash_fail.py")], capture_output=True,
                          text=True, env=mp_env(), cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # The follower's boot counter could not be saved: it runs, and its reports say so.
    assert out["follower"]["flash_errors"] == 1 and out["follower"]["flash_failed"]
    assert out["follower"]["flags"] & 16
    # The leader's epoch could not be saved: it controls in RAM and shows the failure.
    assert out["leader"]["flash_errors"] >= 1 and out["leader"]["error"]
    assert out["leader"]["saved_epoch"] is None and out["leader"]["epoch"] == 1
