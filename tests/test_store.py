"""Persistent files: a reset at any moment leaves the old file or the new one."""
import json
import random
import signal
import subprocess
import time

from vm import ROOT, micropython, mp_env


def test_a_writer_killed_at_random_moments_leaves_a_whole_file(tmp_path):
    path = tmp_path / "site.json"
    rnd = random.Random(7)
    last = 0
    for _ in range(40):
        proc = subprocess.Popen([micropython(), str(ROOT / "tests" / "mp" / "store_writer.py"), str(path)],
                                env=mp_env(), cwd=ROOT)
        time.sleep(0.02 + rnd.random() * 0.1)
        while not path.exists() and proc.poll() is None:
            time.sleep(0.01)  # a loaded machine starts the first writer late: a file to tear first
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        saved = json.loads(path.read_text())  # a torn file would not parse
        assert saved["pad"] == "x" * (saved["n"] * 37 % 4000)
        last = saved["n"]
    assert last > 1  # the writer did get to replace the file


def test_save_and_load_round_trip_and_a_missing_file_is_none(vm, tmp_path):
    path = str(tmp_path / "keys.bin")
    assert vm.call("store", path=path, data="00ff10") == {"loaded": "00ff10", "missing": None}
