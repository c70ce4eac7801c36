# The unix port as the host tools run it: which binary, and whether it compiles to machine code.
import functools
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def micropython():
    return os.environ.get("MICROPYTHON", os.path.join(ROOT, ".venv", "bin", "micropython"))


@functools.lru_cache(maxsize=None)  # asked once a process, when first needed
def native():
    """The flags that have the port compile what it loads to machine code (its native
    emitter), where this build and machine have one: the twin's summaries are the same, in
    about two thirds of the time (docs/twin.md). Empty where it has none."""
    try:
        out = subprocess.run([micropython(), "-X", "emit=native", "-c", "print(6 * 7)"], capture_output=True, text=True)
    except OSError:
        return ()
    return ("-X", "emit=native") if out.stdout.strip() == "42" else ()
