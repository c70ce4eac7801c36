"""The package as it goes onto a board: every module listed for mip, and the boot-time check."""
import json
import subprocess

from vm import ROOT, micropython, mp_env


def test_package_json_lists_every_module():
    pkg = json.loads((ROOT / "firmware" / "package.json").read_text())
    listed = sorted(dest for dest, _ in pkg["urls"])
    lib = ROOT / "lib"
    assert listed == sorted(str(p.relative_to(lib)) for p in (lib / "ampshare").rglob("*.py"))
    for _, src in pkg["urls"]:
        assert (ROOT / "firmware" / src).resolve().exists(), src


def run_app(tmp_path, text):
    site = tmp_path / "site.json"
    site.write_text(text)
    code = ("from ampshare.run import start\ntry:\n s = start.load_site(%r)\n"
            " print('ampshare: %%d groups, %%d chargers' %% (len(s.group_ids), len(s.charger_ids)))\n"
            "except Exception as e:\n print('refused:', e)\n") % str(site)
    return subprocess.run([micropython(), "-c", code], capture_output=True, text=True, env=mp_env()).stdout


def test_the_app_loads_the_site_file(tmp_path):
    out = run_app(tmp_path, (ROOT / "examples" / "apartment-garage.json").read_text())
    assert "ampshare: 4 groups, 12 chargers" in out


def test_the_app_refuses_a_broken_site_file(tmp_path):
    assert "refused: " in run_app(tmp_path, '{"version": 1, "groups": [')
    assert "groups[0].limit_a: missing required field" in run_app(
        tmp_path, '{"version": 1, "groups": [{"id": "main"}]}')


# ---- the house's rules, read from the sources -----------------------------------------------

import ast  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from deploy import sources  # noqa: E402

PKG = ROOT / "lib" / "ampshare"
# What a core module may import beside other core modules: the language's own integers and
# bytes, nothing that reaches a clock, a file, a socket, a pin or the event loop.
CORE_STDLIB = {"array", "micropython", "struct", "hashlib", "binascii"}
CORE_TIME = {"ticks_add", "ticks_diff"}


def imports(path):
    """(module imported, names taken from it) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            names = tuple(a.name for a in node.names)
            if mod in ("ampshare",) or mod.startswith("ampshare."):
                # "from ampshare.core import pilot" names a module; "from X import Y" a name in X.
                for n in names:
                    sub = mod + "." + n
                    out.append((sub, ()) if (PKG.parent / (sub.replace(".", "/") + ".py")).exists() or
                               (PKG.parent / sub.replace(".", "/")).is_dir() else (mod, (n,)))
            else:
                out.append((mod, names))
    return out


def opens_files(path):
    tree = ast.parse(path.read_text())
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
               for n in ast.walk(tree))


MODULES = sources()  # module name -> source, as make deploy names them


def test_core_modules_import_nothing_but_the_core_and_do_no_io():
    core = {m: p for m, p in MODULES.items() if m.startswith("ampshare.core")}
    assert len(core) > 10  # the check reads something
    bad = []
    for mod, path in sorted(core.items()):
        for name, taken in imports(path):
            if name.startswith("ampshare."):
                if not (name == "ampshare.core" or name.startswith("ampshare.core.")):
                    bad.append((mod, name))
            elif name == "time":
                if not taken or set(taken) - CORE_TIME:
                    bad.append((mod, "time." + ",".join(taken) if taken else "time"))
            elif name not in CORE_STDLIB:
                bad.append((mod, name))
        if opens_files(path):
            bad.append((mod, "open()"))
    assert bad == []


def test_the_import_check_finds_what_it_forbids(tmp_path):
    # The check itself, on a core module that breaks every rule once.
    f = tmp_path / "bad.py"
    f.write_text("import os\nfrom time import sleep_ms\nfrom ampshare.run import shell\n"
                 "def f():\n    import socket\n    return open('x')\n")
    found = [n for n, _ in imports(f)]
    assert found == ["os", "time", "ampshare.run.shell", "socket"] and opens_files(f)


def graph():
    g = {}
    for mod, path in MODULES.items():
        deps = set()
        for name, _ in imports(path):
            if name.startswith("ampshare.") and name in MODULES and name != mod:
                deps.add(name)
        g[mod] = deps
    return g


def cycles(g):
    """Every import cycle, each as the list of modules around it (found by depth-first walks)."""
    found, state = [], {}

    def walk(m, stack):
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                walk(d, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            walk(m, [])
    return found


def test_no_import_cycles_anywhere_in_the_package():
    g = graph()
    assert sum(len(d) for d in g.values()) > 50  # the graph holds the package's imports
    assert cycles(g) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
