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
