# Where a simulated second goes: runs the twin in machine code and writes the perf map that
# lets `perf record` name each function of it (the unix port's native code has no symbols).
#   MICROPYPATH=.frozen:lib:build/vendor perf record -F 999 -g -o build/perf.data \
#       .venv/bin/micropython -X emit=native tools/twin_perf.py SCENARIO.json
#   perf script -i build/perf.data | .venv/bin/python tools/perf_shares.py
# The machine code's address is read from the function object, at the offset the unix port's
# 64-bit build keeps it (mp_obj_fun_bc_t: base, context, child table, then the code): a host
# tool only, never the firmware.
import json
import sys

import uctypes

sys.path.append("tools")
import twin  # noqa: E402

_CODE_AT = 24
_LAST_SIZE = 4096  # the last function's length is not known: a page is enough


def functions():
    seen, found = set(), []

    def walk(obj, prefix, depth):
        for name in dir(obj):
            try:
                v = getattr(obj, name)
            except Exception:  # noqa: BLE001 (a property that needs an instance)
                continue
            kind = type(v).__name__
            if kind in ("function", "bound_method") and id(v) not in seen:
                seen.add(id(v))
                found.append((uctypes.struct(id(v) + _CODE_AT, {"p": uctypes.UINT64}).p, prefix + name))
            elif kind == "type" and depth == 0 and id(v) not in seen:
                seen.add(id(v))
                walk(v, prefix + name + ".", 1)

    for name, module in list(sys.modules.items()):
        if name.startswith("ampshare") or name in ("plant", "twin"):
            walk(module, name + ".", 0)
    found.sort()
    return found


def main(argv):
    found = functions()
    pid = open("/proc/self/stat").read().split()[0]
    with open("/tmp/perf-%s.map" % pid, "w") as f:
        for i, (at, name) in enumerate(found):
            size = found[i + 1][0] - at if i + 1 < len(found) else _LAST_SIZE
            if 0 < size < 65536:
                f.write("%x %x %s\n" % (at, size, name))
    with open(argv[1]) as f:
        twin.Twin(json.load(f), None).run()


if __name__ == "__main__":
    main(sys.argv)
