#!/usr/bin/env python3
"""How fast this machine hands out fresh memory: touch 512 MiB of a new anonymous
mapping one byte per 4 KiB page, with and without MADV_HUGEPAGE, and print MB/s for the
first touch (the kernel zeroing and, on a VM, the host backing each page) and a second
touch (the loop alone)."""
import mmap
import time

SIZE = 512 << 20
PAGE = 4096


def touch(m, value):
    start = time.perf_counter()
    for offset in range(0, SIZE, PAGE):
        m[offset] = value
    return SIZE / (time.perf_counter() - start) / 1e6


for huge in (False, True):
    m = mmap.mmap(-1, SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if huge:
        m.madvise(mmap.MADV_HUGEPAGE)
    first, second = touch(m, 1), touch(m, 2)
    print(f"{'huge pages' if huge else '4 KiB pages'}: first touch {first:.0f} MB/s, "
          f"second touch {second:.0f} MB/s")
    m.close()
