"""The steady allocator the benchmarks measure under: freed memory is reused, not faulted in afresh.

The reference is the kernel's count of the process's page faults (``getrusage``), independent of the code.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from nerfinternals.utils import ALLOCATORS, use_allocator
from tests.runs import REPO

PROBE = """
import resource, sys, torch
from nerfinternals.utils import use_allocator
mode = use_allocator(sys.argv[1])
values = int(sys.argv[2]) << 18  # float32 values in that many MB
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):  # the first allocations fault in whatever the mode
    t = torch.ones(values); del t
counts = []
for _ in range(8):
    before = faults()
    t = torch.ones(values); del t
    counts.append(faults() - before)
print(mode, *counts)
"""


def _faults(allocator: str, megabytes: int) -> tuple[str, list[int]]:
    """(mode, page faults of each of 8 allocations of that size after two to warm up)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, allocator, str(megabytes)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    mode, *counts = result.stdout.split()
    return mode, [int(c) for c in counts]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the steady allocator is glibc's")
@pytest.mark.parametrize("megabytes", [64, 2304])
def test_steady_allocator_reuses_freed_memory_where_default_faults_it_in_again(megabytes):
    """64 MB: above glibc's largest mmap threshold (32 MB); 2304 MB: above the largest positive trim
    threshold (2 GB), as much as a full-size NeRF render frees at once."""
    steady_mode, steady = _faults("steady", megabytes)
    default_mode, default = _faults("default", megabytes)
    assert (steady_mode, default_mode) == ("steady", "default")
    # by default every allocation faults in fresh pages (4 KB pages: 256 faults per MB; with transparent
    # huge pages 1 per 2 MB); steady reuses the freed ones. Where small objects land beside the block,
    # the heap can grow once more before a freed block fits the aligned request again (seen: once in
    # eight), so steady may fault on up to two of the eight
    fresh = megabytes // 4  # half the faults of a block faulted in with 2 MB pages
    assert sum(c >= fresh for c in default) == 8, (steady, default)
    assert sum(c >= fresh for c in steady) <= 2, (steady, default)


def test_unknown_allocator_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"unknown allocator 'jemalloc': choose from steady, default"):
        use_allocator("jemalloc")
    assert ALLOCATORS == ("steady", "default")
