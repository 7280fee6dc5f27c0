"""General utilities with no knowledge of the models: clocks, pixel crops, the machine's name, the allocator.

Everything else in the package may import this module; it imports nothing from the package.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import time
from collections import defaultdict
from collections.abc import Iterator

import torch
from nerfstudio.cameras.rays import RayBundle


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so a clock read measures finished work (no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StageTimer:
    """Accumulates synchronised wall time per named stage; with ``enabled=False`` it neither reads the
    clock nor synchronises (a timed whole render then runs as asynchronously as a stock one)."""

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.device = device
        self.enabled = enabled
        self.totals: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        synchronize(self.device)
        start = time.perf_counter()
        yield
        synchronize(self.device)
        self.totals[name] += time.perf_counter() - start


def pixel_grid(bundle: RayBundle, rows: range, cols: range) -> RayBundle:
    """The rays of an (H, W) bundle at the given rows and columns, shape (len(rows), len(cols))."""
    width = bundle.shape[1]
    r = torch.as_tensor(list(rows), device=bundle.origins.device)
    c = torch.as_tensor(list(cols), device=bundle.origins.device)
    index = (r[:, None] * width + c[None, :]).reshape(-1)
    return bundle.flatten()[index].reshape((len(rows), len(cols)))


def warmup_crop(bundle: RayBundle, size: int = 8) -> RayBundle:
    """The top-left ``size`` x ``size`` pixels of an (H, W) bundle: a render of it pays one-time costs
    (allocator, kernels) before the timed renders."""
    height, width = bundle.shape
    return pixel_grid(bundle, range(min(size, height)), range(min(size, width)))


def machine_name(device: torch.device | None = None) -> str:
    """The GPU's name on CUDA, else the CPU's architecture, core count and torch version."""
    device = torch.device(device) if device is not None else None
    if (device is None and torch.cuda.is_available()) or (device is not None and device.type == "cuda"):
        return torch.cuda.get_device_name(device)
    return (
        f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"
    )


ALLOCATORS = ("steady", "default")
"""How CPU memory is allocated: "steady" keeps freed memory for reuse (:func:`keep_freed_memory`),
"default" leaves the C library as it starts."""


def keep_freed_memory() -> bool:
    """Make glibc keep the memory a process frees instead of returning it to the kernel; True if applied.

    By default glibc serves every allocation above its mmap threshold (at most 32 MB) with fresh pages and
    unmaps them when freed. A render on the CPU allocates temporaries of hundreds of MB per chunk (a chunk
    of rays times its samples times a layer's width), so each chunk makes the kernel fault in and zero-fill
    them again, page by page: on the 2-core reference machine a stock nerfacto render (fox, 135 x 240)
    took 13.6 s so and 7.4 s with this (21 M and 0.6 M page faults), and how slow the default is depends
    on the allocator's history in the process. With the heap alone (no mmap) and no trimming at all (a
    threshold of 2 GB is not enough: the full-size NeRF renders free more at once), freed memory is reused
    as it is; the peak resident memory stays held until the process ends. glibc's environment
    variables for the same two settings (``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``, or
    ``GLIBC_TUNABLES``) did not keep the pages on the reference machine (glibc 2.36): set at start-up, every
    64 MB allocation still faulted afresh; ``mallopt`` called once torch is imported does. Not glibc (macOS,
    Windows, musl): nothing is changed and False is returned.
    """
    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>; a trim threshold of -1: never trim
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, -1))
    except (OSError, AttributeError):
        return False


_allocator = "default"


def use_allocator(allocator: str) -> str:
    """Apply ``allocator`` (one of :data:`ALLOCATORS`) to this process; returns what is in effect
    (:func:`allocator_in_effect`). "steady" stays in effect once applied; without glibc it is "default"."""
    global _allocator
    if allocator not in ALLOCATORS:
        raise ValueError(f"unknown allocator {allocator!r}: choose from {', '.join(ALLOCATORS)}")
    if allocator == "steady" and _allocator != "steady" and keep_freed_memory():
        _allocator = "steady"
    return _allocator


def allocator_in_effect(device: torch.device | str = "cpu") -> str:
    """The allocator this process renders on ``device`` with: "steady" once :func:`use_allocator` applied it
    and the device is the CPU (CUDA memory is PyTorch's own), else "default" (timings depend on it: a
    condition of every measured choice)."""
    return _allocator if torch.device(device).type == "cpu" else "default"
