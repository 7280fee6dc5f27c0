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

MB64 = 16 << 20  # float32 values in 64 MB: above glibc's largest mmap threshold (32 MB)

PROBE = f"""
import resource, sys, torch
from nerfinternals.utils import use_allocator
mode = use_allocator(sys.argv[1])
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):  # the first allocations fault in whatever the mode
    t = torch.ones({MB64}); del t
before = faults()
for _ in range(3):
    t = torch.ones({MB64}); del t
print(mode, faults() - before)
"""


def _faults(allocator: str) -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, allocator], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    mode, faults = result.stdout.split()
    return mode, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the steady allocator is glibc's")
def test_steady_allocator_reuses_freed_memory_where_default_faults_it_in_again():
    steady_mode, steady = _faults("steady")
    default_mode, default = _faults("default")
    assert (steady_mode, default_mode) == ("steady", "default")
    # 64 MB allocated three times: by default fresh pages each time (4 KB pages: 3 x 16384 faults; with
    # transparent huge pages 3 x 32), steady reuses the freed ones
    assert steady < 32, (steady, default)
    assert default >= 3 * 32 and default > 3 * steady, (steady, default)


def test_unknown_allocator_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"unknown allocator 'jemalloc': choose from steady, default"):
        use_allocator("jemalloc")
    assert ALLOCATORS == ("steady", "default")
