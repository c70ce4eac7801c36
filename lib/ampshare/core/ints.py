# The board's integers. MicroPython keeps an int below 2**30 inside the object pointer on a
# 32-bit board (a small int); from 2**30 on it is a big int on the heap. Every value a core
# keeps stays below SMALL_MAX; counters stop there.
from micropython import const

SMALL_MAX = const(0x3FFFFFFF)  # 2**30 - 1


def count(n):
    """n + 1, or n once it reaches SMALL_MAX: a flood of anything must not grow a big int."""
    return n + 1 if n < SMALL_MAX else n
