"""A post hoc density grid: the replaced network's density sampled once on a grid, then looked up.

A training-free estimate in the spirit of NerfAcc's occupancy grid, in plain torch. The grid lives in
the model's *unit* coordinates, [0, 1]^3 over whatever region its first network covers: the scene
box (bounded NeRF / Mip-NeRF / nerfacto), the contracted ball of nerfacto's scene contraction, or the
NDC cube of LLFF runs (the model maps positions there: ``grid_coordinates``). It is filled once per
loaded model from that network (``grid_density``, in float32 and without autograd), and looked up by
trilinear interpolation instead of evaluating the network per sample; outside the unit cube the
density is 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor

from nerfinternals.utils import synchronize

FILL_CHUNK = 1 << 16
"""Grid points per evaluation of the network while filling."""


def grid_points(resolution: int, device: torch.device | str = "cpu") -> Tensor:
    """The (resolution^3, 3) unit coordinates of the grid's nodes, x slowest and z fastest."""
    axis = torch.linspace(0.0, 1.0, resolution, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


class DensityGrid:
    """Density on a ``resolution``^3 lattice of nodes spanning the unit cube (both ends included).

    Args:
        density_at: density (M,) of the replaced network at unit coordinates (M, 3).
        resolution: nodes per axis (at least 2).
        device: where the grid lives.
    """

    def __init__(self, density_at: Callable[[Tensor], Tensor], resolution: int, device: torch.device) -> None:
        device = torch.device(device)
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast(device_type=device.type, enabled=False):
            points = grid_points(resolution, device)
            values = torch.cat([density_at(chunk).reshape(-1).float() for chunk in points.split(FILL_CHUNK)])
        # grid_sample reads a (D, H, W) volume at (x, y, z) = (W, H, D) coordinates.
        self.volume = (
            values.view(resolution, resolution, resolution).permute(2, 1, 0).contiguous()[None, None]
        )
        synchronize(device)
        self.fill_seconds = time.perf_counter() - start
        self.resolution = resolution
        self.evaluations = points.shape[0]

    @property
    def nbytes(self) -> int:
        return self.volume.numel() * self.volume.element_size()

    def describe(self) -> dict:
        """Resolution, fill time, memory and number of network evaluations, for reports."""
        return {
            "resolution": self.resolution,
            "fill_seconds": self.fill_seconds,
            "megabytes": self.nbytes / 2**20,
            "evaluations": self.evaluations,
        }

    def density(self, unit: Tensor) -> Tensor:
        """Trilinear density at unit coordinates (..., 3) -> (...); 0 outside the unit cube."""
        grid = (unit.float() * 2 - 1).reshape(1, 1, 1, -1, 3)
        values = torch.nn.functional.grid_sample(self.volume, grid, align_corners=True, padding_mode="zeros")
        return values.reshape(unit.shape[:-1])
