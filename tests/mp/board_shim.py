# A board, as mpremote sees one, run inside the MicroPython unix port as
# `micropython -i board_shim.py` (tests/board.py does this). It makes the port look like a board's filesystem to mpremote:
#
# - "/" is MPBOARD_FS (a VfsPosix rooted there), not the host's root, so `fs mkdir :/lib`
#   and `fs cp x :/lib/...` land in the scratch directory; cwd is "/";
# - sys.path is a board's: ['', '.frozen', '/lib'] (plus '/rom', '/rom/lib' when a ROMFS
#   image is present);
# - os.ilistdir yields (name, type, inode, size) as littlefs/FAT do (the unix port's VfsPosix
#   gives 3-tuples, so `mpremote fs ls` would print size 0 for everything);
# - vfs.rom_ioctl: one ROMFS partition backed by the file MPBOARD_ROM (MPBOARD_ROM_SIZE
#   bytes, 4096-byte blocks), so `mpremote romfs query/deploy` work; a valid image in it is
#   mounted at /rom at start, as a board does at reset;
# - boot.py (and main.py when MPBOARD_RUN_MAIN=1) run in __main__ as on a board's reset.
#
# Everything is undone by a restart of the process, which is what a soft reset is here.


def _board_setup(g):
    import os, sys, vfs

    # The ROM partition's backing file, opened while "/" is still the host's root.
    rom_path = os.getenv("MPBOARD_ROM")
    if rom_path:
        rom_size = int(os.getenv("MPBOARD_ROM_SIZE") or "262144")
        rom = bytearray(b"\xff" * rom_size)
        try:
            with open(rom_path, "rb") as f:
                f.readinto(rom)
        except OSError:
            with open(rom_path, "wb") as f:
                f.write(rom)
        rom_file = open(rom_path, "r+b")

    root = os.getenv("MPBOARD_FS")
    if root:
        vfs.umount("/")
        vfs.mount(vfs.VfsPosix(root), "/")
        os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]

    class _OS:
        # `import os` gives this: the port's os, but ilistdir with sizes.
        def __init__(self, m):
            self._m = m

        def __getattr__(self, name):
            return getattr(self._m, name)

        def ilistdir(self, path="."):
            m = self._m
            base = path if path.endswith("/") else path + "/"
            for e in m.ilistdir(path):
                size = 0
                if e[1] == 0x8000:
                    try:
                        size = m.stat(base + e[0])[6]
                    except OSError:
                        pass
                yield (e[0], e[1], e[2], size)

    sys.modules["os"] = _OS(os)

    # The version line the board reports: this port is a build between two releases, with the
    # .mpy format (sys.implementation._mpy) of the line it stands in for.
    version = os.getenv("MPBOARD_VERSION")
    if version:
        real = sys.implementation

        class _Impl:
            pass

        # (A class body here does not see this function's names: its attributes are set after.)
        _Impl.name = real.name
        _Impl.version = tuple(int(x) for x in version.split(".")) + ("",)
        _Impl._mpy = getattr(real, "_mpy", 0)
        _Impl._machine = "emulated board"

        class _Sys:
            implementation = _Impl()

            def __init__(self, m):
                self._m = m

            def __getattr__(self, name):
                return getattr(self._m, name)

        sys.modules["sys"] = _Sys(sys)

    # A board whose flash does not keep what it is given: the first byte written to a file of
    # this name is changed (MPBOARD_CORRUPT), so a deploy's read-back must notice.
    bad = os.getenv("MPBOARD_CORRUPT")
    if bad:
        import builtins
        real_open = builtins.open

        class _Bad:
            def __init__(self, f):
                self.f, self.first = f, True

            def __getattr__(self, name):
                return getattr(self.f, name)

            def __enter__(self):
                return self

            def __exit__(self, *a):
                self.f.close()

            def write(self, b):
                if self.first and len(b):
                    self.first = False
                    b = bytes([b[0] ^ 1]) + bytes(b[1:])
                return self.f.write(b)

        def _open(path, mode="r", *a):
            f = real_open(path, mode, *a)
            return _Bad(f) if "w" in mode and path.endswith(bad) else f

        builtins.open = _open

    # mpremote's `reset` (machine.reset()): the process ends, and tests/board.py starts the
    # port again as a board boots.
    import machine
    if not hasattr(machine, "reset"):

        class _Machine:
            def __init__(self, m):
                self._m = m

            def __getattr__(self, name):
                return getattr(self._m, name)

            def reset(self):
                sys.exit(1)

        sys.modules["machine"] = _Machine(machine)

    if rom_path:

        class _VFS:
            # `import vfs` gives this: the port's vfs plus rom_ioctl over `rom`.
            def __init__(self, m):
                self._m = m

            def __getattr__(self, name):
                return getattr(self._m, name)

            def rom_ioctl(self, op, rom_id=0, *args):
                if op == 1:  # number of partitions
                    return 1
                if rom_id != 0:
                    return -19  # ENODEV
                if op == 2:  # the partition, as a buffer
                    return memoryview(rom)
                if op == 3:  # prepare (erase) for writing: (len) or (offset, len)
                    off, n = (0, args[0]) if len(args) == 1 else args
                    for i in range(off, min(off + n, rom_size)):
                        rom[i] = 0xFF
                    return 4  # minimum write size
                if op == 4:  # write buf at offset
                    off, buf = args
                    rom[off : off + len(buf)] = buf
                    return 0
                if op == 5:  # end of write: keep it, as flash would
                    rom_file.seek(0)
                    rom_file.write(rom)
                    rom_file.flush()
                    return 0
                if op == 6:  # block size
                    return 4096
                return -22  # EINVAL

        sys.modules["vfs"] = _VFS(vfs)
        if rom[:3] == b"\xd2\xcd\x31":
            try:
                vfs.mount(vfs.VfsRom(memoryview(rom)), "/rom")
                sys.path[1:1] = ["/rom", "/rom/lib"]
            except Exception as e:
                sys.print_exception(e)

    files = ["boot.py"]
    if os.getenv("MPBOARD_RUN_MAIN") == "1":
        files.append("main.py")
    for name in files:
        try:
            os.stat(name)
        except OSError:
            continue
        try:
            with open(name) as f:
                src = f.read()
            exec(compile(src, name, "exec"), g)
        except BaseException as e:  # as pyexec_file does: print, and go on to the REPL
            sys.print_exception(e)


_board_setup(globals())
del _board_setup, __file__
