"""Every example scenario's twin summary from this tree and from another revision, compared
byte for byte: a change meant to keep the behaviour (a new layout, new seams) must print the
same summaries.

    python3 tools/twin_compare.py [--native] REV [SCENARIO ...]

REV is checked out (git worktree) under build/; each tree runs its own tools/twin.py with its
own lib/ in the unix port. --native: this tree's runs through the port's native emitter (as
make bench-twin runs it), REV's as bytecode. Exits 1 when any summary differs.
"""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from port import micropython, native  # noqa: E402


def summary(tree, scenario, flags=()):
    env = dict(os.environ, MICROPYPATH=".frozen:%s" % (tree / "lib"))
    proc = subprocess.run([micropython(), *flags, str(tree / "tools" / "twin.py"), str(scenario)], cwd=tree, env=env,
                          capture_output=True)
    return proc.stdout if proc.returncode == 0 else b"exit %d: %s" % (proc.returncode, proc.stderr[-300:])


def checkout(rev):
    where = ROOT / "build" / ("twin-" + rev.replace("/", "_"))
    if where.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, check=True)
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(where), rev], cwd=ROOT, check=True)
    return where


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    flags = []
    if "--native" in argv:
        argv = [a for a in argv if a != "--native"]
        flags = list(native())
        if not flags:
            print("this port has no native emitter", file=sys.stderr)
            return 2
    rev, names = argv[1], argv[2:]
    old = checkout(rev)
    scenarios = sorted((ROOT / "examples" / "scenarios").glob("*.json"))
    if names:
        scenarios = [s for s in scenarios if s.stem in names]
    try:
        with ThreadPoolExecutor(2) as pool:  # two cores
            here = list(pool.map(lambda s: summary(ROOT, s, flags), scenarios))
            there = list(pool.map(lambda s: summary(old, old / "examples" / "scenarios" / s.name), scenarios))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
    differ = 0
    for s, a, b in zip(scenarios, here, there):
        same = a == b and a.startswith(b"{")
        differ += not same
        print("%-24s %s" % (s.stem, "identical" if same else "DIFFERS"))
        if not same:
            print("  here:  %s\n  %s: %s" % (a[:300].decode(errors="replace"), rev, b[:300].decode(errors="replace")))
    print("%d scenarios, %d differ" % (len(scenarios), differ))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
