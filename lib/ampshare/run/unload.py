# Letting go of modules once the role runs. A board that runs .mpy files from its filesystem
# keeps their bytecode in RAM, as the unix port does; released, that RAM is given back. (Their
# names stay interned: the saving is the code.)
import gc
import sys

# What only start-up needs. A running leader keeps the site's model (core/site.py), not its parser.
_START_ONLY = ("ampshare.config.settings", "ampshare.config.units", "ampshare.hal", "ampshare.run.start", "ampshare.config.site",
               "ampshare.meter.maps", "ampshare.meter.modbus")


def release(names=_START_ONLY):
    """Let go of the modules named that nothing running holds (see _held)."""
    for name in names:
        if name not in sys.modules or _held(name):
            continue
        del sys.modules[name]
        parent, _, short = name.rpartition(".")
        up = sys.modules.get(parent)
        if up is not None and short in up.__dict__:
            delattr(up, short)
    gc.collect()


def _held(name):
    # A module another loaded one still holds (the module, or a class of it: a meter line
    # keeps ModbusError) stays: a later import would make a second module with a second
    # class of that name, and an except or isinstance on one would not match the other.
    mod = sys.modules[name]
    for other in sys.modules:
        if other == name or other == name.rpartition(".")[0] or not other.startswith("ampshare."):
            continue  # its package's attribute for it goes with it
        for v in sys.modules[other].__dict__.values():
            if v is mod or (isinstance(v, type) and getattr(v, "__module__", None) == name):
                return True
    return False
