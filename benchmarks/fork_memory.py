"""What memory costs a fork here: one more mapping, and one more resident page.
fork() copies the parent's mappings and the page tables of its written
anonymous pages, so a library's mappings and the memory it leaves resident
are what it costs every fork (docs/performance.md, section 1c).

In one process, with separate anonymous mappings of written pages mapped and
unmapped in alternation (one untimed fork after each change), so that layout
and everything else stay the same. Printed: the ratio of medians, mapped to
unmapped, for each shape, and what that makes per mapping and per page."""

from __future__ import annotations

import mmap

from _common import median, table
from _forks import timed_forks

PAGE = mmap.PAGESIZE
SHAPES = [(10, 1), (20, 1), (1, 100), (1, 200), (4, 50)]  # (mappings, written pages each)
ROUNDS, BATCH = 60, 10


def ratio(mappings: int, pages: int) -> float:
    mapped: list[int] = []
    unmapped: list[int] = []
    for _ in range(ROUNDS):
        # A page more than written keeps the kernel from merging neighbours.
        held = [mmap.mmap(-1, (pages + 1) * PAGE) for _ in range(mappings)]
        for region in held:
            for page in range(pages):
                region[page * PAGE] = 1
        timed_forks(1)
        mapped += timed_forks(BATCH)
        for region in held:
            region.close()
        timed_forks(1)
        unmapped += timed_forks(BATCH)
    return median(mapped) / median(unmapped)


def main() -> None:
    rows = []
    for mappings, pages in SHAPES:
        r = ratio(mappings, pages)
        rows.append([mappings, pages, f"{r:.4f}",
                     f"{(r - 1) * 100 / mappings:.3f}" if pages == 1 else "-",
                     f"{(r - 1) * 100 / (mappings * pages):.4f}" if pages > 1 else "-"])
    table("fork + _exit + waitpid: memory mapped / unmapped (one process)",
          ["mappings", "written pages each", "ratio", "% per mapping", "% per page"], rows)


if __name__ == "__main__":
    main()
