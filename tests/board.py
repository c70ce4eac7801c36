#!/usr/bin/env python3
"""The MicroPython unix port as a board on a serial line, for mpremote (tests/test_deploy.py).

stdin/stdout are the line (socat connects them to a pty that mpremote opens as a board's):

    socat pty,raw,echo=0,link=DEVICE EXEC:"python3 tests/board.py --fs DIR [--rom FILE]"

This process runs `micropython -i tests/mp/board_shim.py` in a pty of its own and relays bytes.
It adds what the port lacks for mpremote:

- soft reset: the port's REPL *exits the process* on Ctrl-D (friendly REPL, or raw REPL with
  an empty buffer) where a board reboots. Here the port is restarted, "MPY: soft reboot" is
  printed, and if the REPL was in raw mode it is put back into raw mode (as a board stays in
  raw REPL across a soft reset), which is the sequence mpremote's enter_raw_repl waits for;
- Ctrl-C while code runs: the port only ever sees Ctrl-C during execution as SIGINT from
  its tty, and code sent by raw-paste (all of mpremote's) runs with the tty still in the
  REPL's raw mode (no ISIG), so a \\x03 from the line could never stop it, on any pty
  setting. So a \\x03 from the line becomes SIGINT when the port has its SIGINT handler
  installed, which it has exactly while it runs code with micropython.kbd_intr(3) (the
  default); at a REPL prompt (handler not installed) or under kbd_intr(-1) (mpremote's mount
  protocol, where \\x03 is data) the byte is passed through;
- the pty's output processing is off, so "\\n" is not turned into "\\r\\n" twice (with ONLCR
  on, the port's "raw REPL; CTRL-B to exit\\r\\n>" arrives as "...\\r\\r\\n>" and mpremote
  cannot enter the raw REPL).
"""
import argparse
import os
import pty
import re
import select
import signal
import sys
import time
import tty

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(HERE, "mp", "board_shim.py")
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"


def log(*a):
    if ARGS.log:
        with open(ARGS.log, "a") as f:
            print("%.3f" % time.time(), *a, file=f)


def spawn(run_main):
    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen"
    env["MPBOARD_FS"] = ARGS.fs
    env["MPBOARD_RUN_MAIN"] = "1" if run_main else "0"
    if ARGS.version:
        env["MPBOARD_VERSION"] = ARGS.version
    if ARGS.corrupt:
        env["MPBOARD_CORRUPT"] = ARGS.corrupt
    if ARGS.rom:
        env["MPBOARD_ROM"] = ARGS.rom
        env["MPBOARD_ROM_SIZE"] = str(ARGS.rom_size)
    argv = [ARGS.micropython]
    if ARGS.heapsize:
        argv += ["-X", "heapsize=" + ARGS.heapsize]
    argv += ["-i", SHIM]
    pid, fd = pty.fork()
    if pid == 0:
        try:
            tty.setraw(0)  # no echo, no ICANON, no ISIG, no OPOST: binary both ways
            os.chdir(ARGS.fs)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    log("spawned", pid, "main" if run_main else "")
    return pid, fd


def read_until(fd, ending, timeout=10):
    data = b""
    end = time.monotonic() + timeout
    while not data.endswith(ending) and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def running_code(pid):
    # The port installs its SIGINT handler only while it runs code, with kbd_intr(3).
    try:
        with open("/proc/%d/status" % pid) as f:
            sigcgt = int(re.search(r"SigCgt:\s*([0-9a-f]+)", f.read()).group(1), 16)
    except (OSError, AttributeError):
        return False
    return bool(sigcgt & (1 << (signal.SIGINT - 1)))


def write_all(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def main():
    out = sys.stdout.fileno()
    inp = sys.stdin.fileno()
    pid, fd = spawn(run_main=ARGS.main)
    raw = False  # the REPL mode last seen in the port's output
    tail = b""
    pending = b""  # line -> port
    while True:
        wfds = [fd] if pending else []
        r, w, _ = select.select([fd] + ([] if pending else [inp]), wfds, [])
        if fd in w:
            n = os.write(fd, pending[:256])
            pending = pending[n:]
        if fd in r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if data:
                write_all(out, data)
                tail = (tail + data)[-256:]
                i_raw = tail.rfind(RAW_BANNER)
                i_friendly = max(tail.rfind(b"\n>>> "), tail.rfind(b"MicroPython "))
                if i_raw > i_friendly:
                    raw = True
                elif i_friendly > i_raw:
                    raw = False
                if i_raw >= 0 or i_friendly >= 0:
                    tail = tail[max(i_raw, i_friendly) + 1 :]
                continue
            # The port exited: a soft reset (Ctrl-D), sys.exit(), machine.reset(), a crash.
            _, status = os.waitpid(pid, 0)
            os.close(fd)
            pending = b""
            soft = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            log("exit", status, "raw" if raw else "friendly")
            if soft and raw:
                write_all(out, b"MPY: soft reboot\r\n")
                pid, fd = spawn(run_main=False)
                boot = read_until(fd, b">>> ")
                j = boot.rfind(b"MicroPython ")
                write_all(out, boot[:j] if j >= 0 else b"")  # boot.py's output
                os.write(fd, b"\x01")
                read_until(fd, RAW_BANNER + b">")
                write_all(out, RAW_BANNER + b">")
            else:
                write_all(out, b"MPY: soft reboot\r\n" if soft else b"\r\n")
                pid, fd = spawn(run_main=ARGS.main)
                raw = False
            tail = b""
            continue
        if inp in r:
            data = os.read(inp, 4096)
            if not data:  # the line is gone: socat exited
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            if b"\x03" in data and running_code(pid):
                log("ctrl-c -> SIGINT")
                os.kill(pid, signal.SIGINT)
                data = data.replace(b"\x03", b"")
            pending += data


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fs", required=True, help="the board's filesystem root")
    p.add_argument("--micropython", default=os.environ.get("MICROPYTHON") or
                   os.path.join(HERE, "..", ".venv", "bin", "micropython"))
    p.add_argument("--corrupt", help="a file name whose first byte written is changed (a failing flash)")
    p.add_argument("--version", help="the MicroPython version the board reports, e.g. 1.28.0")
    p.add_argument("--heapsize", help="-X heapsize for the port, e.g. 160K")
    p.add_argument("--main", action="store_true", help="run main.py at power-on and friendly soft reset")
    p.add_argument("--rom", help="file backing an emulated ROMFS partition (vfs.rom_ioctl)")
    p.add_argument("--rom-size", type=int, default=256 * 1024)
    p.add_argument("--log", help="append a log of restarts here")
    ARGS = p.parse_args()
    ARGS.fs = os.path.abspath(ARGS.fs)
    ARGS.rom = ARGS.rom and os.path.abspath(ARGS.rom)
    os.makedirs(ARGS.fs, exist_ok=True)
    main()
