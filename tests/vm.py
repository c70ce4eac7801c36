"""The MicroPython unix port as a persistent worker: JSON lines in, JSON lines out."""
import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def micropython():
    """The unix-port binary: $MICROPYTHON, else the one in .venv, else on PATH."""
    exe = os.environ.get("MICROPYTHON") or str(ROOT / ".venv" / "bin" / "micropython")
    if not Path(exe).exists():
        exe = shutil.which("micropython") or exe
    return exe


def mp_env():
    env = dict(os.environ)
    # .frozen keeps the port's built-in Python modules (asyncio) importable.
    env["MICROPYPATH"] = ".frozen:%s:%s:%s" % (ROOT / "lib", ROOT / "tests" / "mp", ROOT / "build" / "vendor")
    return env


class VMError(AssertionError):
    pass


class VM:
    def __init__(self, heap=None):
        args = [micropython()]
        if heap:
            args += ["-X", "heapsize=" + heap]
        args.append(str(ROOT / "tests" / "mp" / "worker.py"))
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=mp_env(), text=True, bufsize=1, cwd=ROOT)

    def request(self, op, **kw):
        """Send one request; return the whole answer ({"ok": ...} or {"error": ...})."""
        kw["op"] = op
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise VMError("the MicroPython worker exited (code %s)" % self.proc.poll())
        ans = json.loads(line)
        if "crash" in ans:
            raise VMError("firmware raised " + ans["crash"])
        return ans

    def call(self, op, **kw):
        """Send one request that must succeed; return its result."""
        ans = self.request(op, **kw)
        if "error" in ans:
            raise VMError("refused: " + ans["error"])
        return ans["ok"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
