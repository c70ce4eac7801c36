# Runs a board's role in the unix port with ampshare's code in a ROM image, as a board keeps it
# (frozen into the firmware, or in a ROMFS partition): the bytecode runs in place and the heap
# is left to the application.
#
#   micropython -X heapsize=N tools/rom_run.py build/ampshare.romfs [settings.json]
#
# The unix port has no flash, so the image is read into the heap first, as one block at its
# bottom; the launcher (tools/sim.py) gives the heap that block's size on top of the role's, and
# this prints the block's size so that a report can take it off again.
import gc
import os
import sys

import vfs


def main(image, settings="settings.json"):
    size = os.stat(image)[6]
    rom = bytearray(size)  # before anything else: one block, never moved, never freed
    with open(image, "rb") as f:
        f.readinto(rom)
    vfs.mount(vfs.VfsRom(rom), "/rom")
    sys.path.insert(0, "/rom")
    gc.collect()
    # What the role has beside the image: the heap a board gives it.
    print("rom: %d bytes, heap beside it: %d" % (size, gc.mem_alloc() + gc.mem_free() - size))
    from ampshare.run import app
    app.main(settings)


main(*sys.argv[1:])
