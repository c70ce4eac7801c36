# make allocate SITE=site.json STATE=state.json: one allocation in the unix port, as JSON.
# Bad input exits 1 with a one-line reason on stderr, never a traceback.
import json
import sys

from ampshare.config import snapshot
from ampshare.config.units import ConfigError


def _read(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        raise ConfigError(what, "cannot read '%s'" % path)
    except ValueError:
        raise ConfigError(what, "'%s' is not valid JSON" % path)


def main(argv):
    if len(argv) != 3:
        print("usage: allocate.py SITE.json STATE.json", file=sys.stderr)
        return 2
    try:
        alloc = snapshot.run(_read(argv[1], "SITE"), _read(argv[2], "STATE"))
    except ConfigError as e:
        print("allocate: " + str(e), file=sys.stderr)
        return 1
    for w in alloc.site.warnings:
        print("warning: " + w, file=sys.stderr)
    print(snapshot.to_json(alloc))
    return 0


sys.exit(main(sys.argv))
