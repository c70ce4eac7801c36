"""`make deploy` end to end, against the unix port standing in for a board on a serial line:
socat makes the pty mpremote opens, tests/board.py gives the port a board's soft reset, root
filesystem and (optionally) a ROMFS partition (tests/mp/board_shim.py)."""
import hashlib
import json
import re
import shutil
import subprocess
import time

import pytest

from vm import ROOT

MPREMOTE = str(ROOT / ".venv" / "bin" / "mpremote")
LIB = ROOT / "build" / "lib"


@pytest.fixture
def board(tmp_path):
    """start(version, rom_size=None): a board on a serial device; returns (device, fs dir, rom file)."""
    socat = shutil.which("socat")
    assert socat, "socat is needed: make setup installs it"
    procs = []

    def start(version, rom_size=None, corrupt=None):
        dev, fs, rom = tmp_path / "ttyUSB0", tmp_path / "fs", tmp_path / "rom.bin"
        fs.mkdir()
        cmd = "%s %s --fs %s --version %s" % (shutil.which("python3"), ROOT / "tests" / "board.py", fs, version)
        if corrupt:
            cmd += " --corrupt " + corrupt
        if rom_size:
            cmd += " --rom %s --rom-size %d" % (rom, rom_size)
        procs.append(subprocess.Popen([socat, "pty,raw,echo=0,link=%s" % dev, "EXEC:%s" % cmd],
                                      stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while not dev.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return str(dev), fs, rom
    yield start
    for p in procs:
        p.kill()
        p.wait()


def deploy(dev, role, settings=None):
    args = ["make", "-s", "--no-print-directory", "deploy", "PORT=" + dev, "ROLE=" + role]
    if settings:
        args.append("SETTINGS=%s" % settings)
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def on_board(dev, code):
    # Right after deploy's reset the board may still be starting: tried again, as deploy does.
    for _ in range(5):
        p = subprocess.run([MPREMOTE, "connect", dev, "exec", code], capture_output=True, text=True, timeout=60)
        if p.returncode == 0 or "could not enter raw repl" not in p.stderr:
            break
        time.sleep(1)
    assert p.returncode == 0, p.stderr
    return p.stdout


def files(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def test_a_board_of_another_version_line_is_refused_in_one_line_and_nothing_is_written(board):
    dev, fs, _ = board("1.27.0")
    run = deploy(dev, "follower")
    lines = [x for x in run.stderr.strip().splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", x)]
    assert run.returncode != 0 and len(lines) == 1, run.stderr
    assert lines[0].startswith("deploy: refused: the board runs MicroPython 1.27.0") and "1.28" in lines[0]
    assert files(fs) == {}


def test_a_follower_without_romfs_gets_its_modules_in_lib_checked_and_importable(board, tmp_path):
    dev, fs, _ = board("1.28.0")
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"role": "follower", "code": "label-code"}))
    wrong = tmp_path / "leader.json"
    wrong.write_text(json.dumps({"role": "leader", "code": "x"}))
    run = deploy(dev, "follower", wrong)
    assert run.returncode != 0 and "its role is 'leader', not 'follower'" in run.stderr and files(fs) == {}
    run = deploy(dev, "follower", settings)
    assert run.returncode == 0, run.stderr
    got = files(fs)
    # What was written is what was built, byte for byte.
    mods = {k for k in got if k.startswith("lib/")}
    for k in mods:
        assert got[k] == hashlib.sha256((LIB / k[4:]).read_bytes()).hexdigest(), k
    assert "lib/ampshare/run/follower.mpy" in mods and "lib/microdot/microdot.mpy" in mods
    assert not {"lib/ampshare/run/leader.mpy", "lib/ampshare/web/server.mpy", "lib/page.html.gz"} & mods
    assert (fs / "main.py").read_bytes() == (ROOT / "main.py").read_bytes()
    assert (fs / "boot.py").read_bytes() == (ROOT / "boot.py").read_bytes()
    assert json.loads((fs / "settings.json").read_text())["role"] == "follower"
    # A label code was made (the board had none), said once, and kept on the board.
    code = json.loads((fs / "label.json").read_text())["code"]
    assert len(code) == 8 and ("label code %s" % code) in run.stdout
    assert "written and read back" in run.stdout
    # The board was reset and comes back; what a follower starts from imports from /lib (all but
    # hal/esp32.py, which needs the board's network module).
    out = on_board(dev, "from ampshare.run import app, follower, setup, start\nimport ampshare.hal\n"
                        "print(follower.__file__)")
    assert "/lib/ampshare/run/follower.mpy" in out
    # Again: the label code the board has stays.
    run = deploy(dev, "follower", settings)
    assert run.returncode == 0 and "label code" not in run.stdout, run.stdout + run.stderr
    assert json.loads((fs / "label.json").read_text())["code"] == code


def test_a_file_that_does_not_read_back_as_written_fails_the_deploy(board):
    dev, fs, _ = board("1.28.0", corrupt="main.py")
    run = deploy(dev, "follower")
    assert run.returncode != 0 and "deploy: failed: 1 file(s) do not read back as written: /main.py" in run.stderr, \
        run.stdout + run.stderr
    assert "written and read back" not in run.stdout
    # The label code it made is said all the same: it is on the board now.
    assert "label code %s" % json.loads((fs / "label.json").read_text())["code"] in run.stdout
    # No settings, none on the board: its role is chosen at its setup page, so it has the
    # leader's modules too.
    assert (fs / "lib" / "ampshare" / "run" / "leader.mpy").exists()


def test_a_romfs_partition_too_small_for_the_image_is_refused_before_anything_is_written(board):
    # /lib would be written, but the partition's old image stays mounted ahead of it on sys.path.
    dev, fs, rom = board("1.28.0", rom_size=64 * 1024)
    run = deploy(dev, "leader")
    assert run.returncode != 0 and "does not fit the board's ROMFS partition (65536 bytes)" in run.stderr, run.stderr
    assert files(fs) == {}


def test_a_leader_with_a_romfs_partition_gets_the_image_read_back(board):
    image = None
    dev, fs, rom = board("1.28.0", rom_size=512 * 1024)
    run = deploy(dev, "leader")
    assert run.returncode == 0, run.stderr
    assert "ROMFS partition" in run.stdout and "and the ROM image" in run.stdout, run.stdout
    image = (ROOT / "build" / "ampshare.romfs").read_bytes()
    assert rom.read_bytes()[:len(image)] == image
    assert not (fs / "lib").exists()  # the code is in the image only
    out = on_board(dev, "import ampshare.run.leader as m\nprint(m.__file__)")
    assert out.strip() == "/rom/ampshare/run/leader.mpy"
