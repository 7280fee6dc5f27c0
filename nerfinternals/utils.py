"""General utilities with no knowledge of the models: clocks, pixel crops, the machine's name.

Everything else in the package may import this module; it imports nothing from the package.
"""

from __future__ import annotations

import contextlib
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
