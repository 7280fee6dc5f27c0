#!/usr/bin/env python
"""Measure the cost model's per-operation times on this machine, on synthetic inputs (no run, no scene).

Each operation of :mod:`nerfinternals.cost` is timed in isolation at the sizes the models use (median of
``--repeats`` after a warm-up, inference mode, fp32): Linear layers of every size of the shipped and paper
models, a torch hash grid (8 levels x 2 features), positional and integrated positional encodings, scene
contraction, density grid look-ups at several resolutions, compositing of weights along rays and
inverse-transform sampling, each on as many samples as a render evaluates per call (:data:`ROWS`: a chunk
of rays times their samples; narrow layers and large grids cost several times more per unit there than
on a small batch that stays in the caches). The constants are written
to ``--output`` (JSON with the machine's name) and, with ``--install``, to
``nerfinternals/cost_constants.py`` (the default the package uses).

    python -m benchmarks.calibrate_cost --output benchmarks/results/cost-cpu/constants.json --install
"""

from __future__ import annotations

import datetime
import json
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from nerfstudio.cameras.rays import Frustums, RayBundle, RaySamples
from nerfstudio.field_components.encodings import HashEncoding, NeRFEncoding
from nerfstudio.field_components.spatial_distortions import SceneContraction
from nerfstudio.model_components.ray_samplers import PDFSampler
from nerfstudio.model_components.renderers import RGBRenderer
from rich.console import Console

from nerfinternals.common import run_cli
from nerfinternals.grid import DensityGrid
from nerfinternals.utils import ALLOCATORS, machine_name, use_allocator

CONSOLE = Console(width=120)
ROWS = 1 << 18
"""Samples per timed call: a chunk of rays times their samples, as the renders evaluate them (the shared
lego NeRF: 4096 rays x 64 coarse samples; the real-capture nerfacto runs: 2500 x 96 to 2500 x 256)."""
GRID_RESOLUTIONS = (32, 64, 128, 256)
"""Density grid resolutions timed; the model interpolates between them in log resolution."""
LAYER_SIZES = (
    (16, 16),
    (16, 32),
    (32, 32),
    (63, 64),
    (64, 64),
    (128, 128),
    (99, 256),
    (256, 256),
    (319, 256),
)
"""(in, out) of the Linear layers timed; the model interpolates between their in x out in log size."""


@dataclass
class CalibrateCost:
    """Time each operation of the cost model on synthetic inputs and write the constants."""

    output: Path = Path("benchmarks/results/cost-cpu/constants.json")
    """Where the constants go (JSON)."""
    install: bool = False
    """Also write nerfinternals/cost_constants.py, the package's default constants."""
    repeats: int = 7
    """Timed calls per operation; the median is used."""
    threads: int = 0
    """torch threads (0: torch's default)."""
    allocator: Literal[ALLOCATORS] = "steady"
    """CPU memory: "steady" keeps freed memory for reuse, "default" leaves glibc as it starts (see
    nerfinternals.utils.keep_freed_memory); calibrate with the allocator the benchmarks use."""


def _median_seconds(fn, repeats: int) -> float:
    with torch.inference_mode():
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _along_rays(rays: int, per_ray: int) -> torch.Tensor:
    """(rays * per_ray, 3) points in the unit cube, ``per_ray`` consecutive ones along each random ray, as
    a render looks its samples up (neighbours in memory are neighbours in space: caches help, as they do
    there; uniformly random points would miss them far more often)."""
    origins = torch.rand(rays, 1, 3)
    directions = torch.nn.functional.normalize(torch.randn(rays, 1, 3), dim=-1)
    t = torch.linspace(-0.5, 0.5, per_ray)[None, :, None]
    return (origins + t * directions).clamp(0.0, 1.0).reshape(-1, 3)


def _samples(rays: int, per_ray: int) -> RaySamples:
    bins = torch.linspace(2.0, 6.0, per_ray + 1)
    starts = bins[:-1].expand(rays, per_ray)[..., None]
    ends = bins[1:].expand(rays, per_ray)[..., None]
    return RaySamples(
        frustums=Frustums(
            origins=torch.zeros(rays, per_ray, 3),
            directions=torch.nn.functional.normalize(torch.randn(rays, 1, 3), dim=-1).expand(
                rays, per_ray, 3
            ),
            starts=starts,
            ends=ends,
            pixel_area=torch.ones(rays, per_ray, 1),
        ),
        deltas=ends - starts,
        spacing_starts=torch.linspace(0, 1, per_ray + 1)[:-1].expand(rays, per_ray)[..., None],
        spacing_ends=torch.linspace(0, 1, per_ray + 1)[1:].expand(rays, per_ray)[..., None],
        spacing_to_euclidean_fn=lambda x: 2.0 + 4.0 * x,
    )


def calibrate(repeats: int = 7) -> dict:
    """Seconds per unit of each operation (see :data:`nerfinternals.cost.OPERATIONS`)."""
    torch.manual_seed(0)
    constants: dict = {"mac": {}}
    for n_in, n_out in LAYER_SIZES:
        layer, x = torch.nn.Linear(n_in, n_out), torch.randn(ROWS, n_in)
        t = _median_seconds(lambda layer=layer, x=x: torch.relu(layer(x)), repeats)
        constants["mac"][str(n_in * n_out)] = t / (ROWS * n_in * n_out)
    points = _along_rays(ROWS // 64, 64)
    hash_grid = HashEncoding(num_levels=8, features_per_level=2, log2_hashmap_size=17, implementation="torch")
    constants["hash"] = _median_seconds(lambda: hash_grid(points), repeats) / (ROWS * 8 * 8 * 2)
    encoding = NeRFEncoding(3, 10, 0.0, 8.0, include_input=True)
    constants["encode"] = _median_seconds(lambda: encoding(points), repeats) / (ROWS * encoding.get_out_dim())
    covs = torch.diag_embed(torch.rand(ROWS, 3) * 1e-3)
    integrated = NeRFEncoding(3, 16, 0.0, 16.0, include_input=True)
    constants["ipe"] = _median_seconds(lambda: integrated(points, covs=covs), repeats) / (
        ROWS * integrated.get_out_dim()
    )
    contraction = SceneContraction(order=float("inf"))  # nerfacto's; positions inside and outside the ball
    spread = (points - 0.5) * 8
    constants["contract"] = _median_seconds(lambda: contraction(spread), repeats) / ROWS
    constants["grid"] = {}
    for resolution in GRID_RESOLUTIONS:
        grid = DensityGrid(lambda unit: unit.sum(dim=-1), resolution, torch.device("cpu"))
        seconds = _median_seconds(lambda grid=grid: grid.density(points), repeats)
        constants["grid"][str(resolution)] = seconds / ROWS
        del grid
    rays, per_ray = ROWS // 64, 64
    samples = _samples(rays, per_ray)
    density, rgb = torch.rand(rays, per_ray, 1), torch.rand(rays, per_ray, 3)
    renderer = RGBRenderer(background_color="white")

    def composite():
        weights = samples.get_weights(density)
        renderer(rgb=rgb, weights=weights)
        (weights * samples.frustums.starts).sum(dim=-2)

    constants["composite"] = _median_seconds(composite, repeats) / (rays * per_ray)
    bundle = RayBundle(
        origins=torch.zeros(rays, 3),
        directions=samples.frustums.directions[:, 0],
        pixel_area=torch.ones(rays, 1),
        nears=torch.full((rays, 1), 2.0),
        fars=torch.full((rays, 1), 6.0),
    )
    weights = samples.get_weights(density)
    sampler = PDFSampler(num_samples=per_ray, include_original=False).eval()
    constants["draw"] = _median_seconds(lambda: sampler(bundle, samples, weights), repeats) / (rays * per_ray)
    return constants


def _python_literal(value: dict) -> str:
    """``value`` as a formatted Python literal (JSON with the trailing commas ruff's formatter writes)."""
    return re.sub(r"([^{\s])\n(\s*)\}", r"\1,\n\2}", json.dumps(value, indent=4))


def main(cfg: CalibrateCost) -> None:
    allocator = use_allocator(cfg.allocator)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    constants = calibrate(cfg.repeats)
    record = {
        "machine": machine_name(torch.device("cpu")),
        "threads": torch.get_num_threads(),
        "date": datetime.date.today().isoformat(),
        "repeats": cfg.repeats,
        "allocator": allocator,
        "constants": constants,
    }
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(json.dumps(record, indent=2) + "\n")
    for key, value in constants.items():
        if key == "mac":
            for size, c in value.items():
                CONSOLE.print(f"mac (layer in x out = {size:>6}): {c * 1e12:8.2f} ps / multiply-add")
        elif key == "grid":
            for resolution, c in value.items():
                CONSOLE.print(f"grid look-up ({resolution:>3}^3): {c * 1e9:8.3f} ns")
        else:
            CONSOLE.print(f"{key:<9}: {value * 1e9:8.3f} ns / unit")
    CONSOLE.print(f"-> {cfg.output}")
    if cfg.install:
        target = Path(__file__).resolve().parents[1] / "nerfinternals" / "cost_constants.py"
        target.write_text(
            '"""Per-operation times of the cost model (:mod:`nerfinternals.cost`), measured by\n'
            f"``python -m benchmarks.calibrate_cost --install`` on {record['machine']}, {record['threads']} threads,\n"
            f"{allocator} allocator, "
            f'{record["date"]} (median of {cfg.repeats}; seconds per unit). Generated: do not edit."""\n\n'
            f"CONSTANTS = {_python_literal(constants)}\n"
        )
        CONSOLE.print(f"-> {target}")


def entrypoint() -> None:
    run_cli(CalibrateCost, main)


if __name__ == "__main__":
    entrypoint()
