"""Reads `perf script` (with call graphs) on stdin: each sample goes to the first of our
functions on its stack (tools/twin_perf.py names them), and to its leaf. Prints the shares."""
import collections
import sys

OURS = ("ampshare.", "twin.", "plant.")


def samples(lines):
    stack = []
    for line in lines:
        line = line.rstrip()
        if not line:
            if stack:
                yield stack
            stack = []
        elif line[:1] in ("\t", " "):
            parts = line.split(None, 1)
            if len(parts) == 2:
                stack.append(parts[1].split(" (")[0].split("+")[0])


def main():
    ours, leaves, n = collections.Counter(), collections.Counter(), 0
    for stack in samples(sys.stdin):
        n += 1
        leaves[stack[0]] += 1
        ours[next((s for s in stack if s.startswith(OURS)), "(the VM, outside our functions)")] += 1
    for title, counts in (("first of our functions on the stack", ours), ("leaf", leaves)):
        print("-- %s, of %d samples" % (title, n))
        for name, k in counts.most_common(20):
            print("%5.1f %%  %s" % (100 * k / n, name))


if __name__ == "__main__":
    main()
