# Files the board keeps across resets (configuration, keys, pairing). A reset at any moment
# must leave the old file or the new one, never a torn one: write a sibling, then rename it
# over the old. The rename is atomic on LittleFS (the ESP32 port's filesystem) and on POSIX
# (the unix port). FAT cannot rename onto an existing name: there save() raises OSError and
# the old file stays as it was.
import json
import os

_NEW = ".new"
SETTINGS_FILE = "settings.json"  # the board's role and hardware, at the filesystem's root


def save(path, data):
    """Replace the file at path with data (bytes or str), all or nothing."""
    tmp = path + _NEW
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.rename(tmp, path)


def save_json(path, obj):
    """save() for a JSON value, streamed to the file: no string of its size on the heap."""
    tmp = path + _NEW
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def save_lines(path, chunks):
    """save() for text produced a piece at a time (any iterable of str)."""
    tmp = path + _NEW
    with open(tmp, "w") as f:
        for chunk in chunks:
            f.write(chunk)
    os.rename(tmp, path)


_REQUIRED = object()


def read_json(path, missing=_REQUIRED):
    """The JSON value in the file, parsed as it is read. A file that is not there gives
    `missing` where one is given; else, as for one that is not JSON, a ConfigError names the
    file and what is wrong with it."""
    from ampshare.config.units import ConfigError
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        if missing is not _REQUIRED:
            return missing
        raise ConfigError(path, "cannot be read")
    except ValueError:
        raise ConfigError(path, "is not valid JSON")


def load(path, binary=False):
    """The file's contents, or None when there is none."""
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read()
    except OSError:
        return None
