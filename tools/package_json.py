#!/usr/bin/env python3
"""make package-json: list every module of lib/ampshare in firmware/package.json for mip."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
lib = ROOT / "lib"
path = ROOT / "firmware" / "package.json"
pkg = json.loads(path.read_text())
pkg["urls"] = [[m, "../lib/" + m] for m in sorted(str(p.relative_to(lib)) for p in (lib / "ampshare").rglob("*.py"))]
path.write_text(json.dumps(pkg, indent=2) + "\n")
