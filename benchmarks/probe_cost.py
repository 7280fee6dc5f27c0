#!/usr/bin/env python
"""Where the probe's time goes: sampling, encoding, layers 0..l, against the full MLP and a render.

Multiply-adds count only the Linear layers; this measures the rest. For one eval image of a run:
the uniform samples, their encoding as the probed MLP sees it, the activation feature v at each
layer (the truncated forward), the full probed MLP, and the stock render of the whole image.
Like the renders, the probe stages run on chunks of the model's ``eval_num_rays_per_chunk`` rays;
a stage's time is the sum over the chunks of its median of ``--repeats`` runs after a warm-up,
synchronised on CUDA.

    python -m benchmarks.probe_cost --load-config outputs/demo/spheres/activation-mipnerf/run/config.yml
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from nerfinternals.common import check_rescale, eval_views, run_cli, timed
from nerfinternals.internals import activation_feature, num_probe_layers
from nerfinternals.loading import InputError, load_pipeline

CONSOLE = Console(width=120)


@dataclass
class ProbeCost:
    """Time the stages of the activation probe on one eval image of a run."""

    load_config: Path
    """The run's config.yml."""
    image_idx: int = 0
    """Which eval image (position in the eval set)."""
    repeats: int = 5
    """Timed runs per stage; the median is reported."""
    rescale: float = 1.0
    """Render the camera at this fraction of its resolution (0.125: a 400 px image at 50 x 50)."""
    device: str | None = None
    """Torch device (default: cuda if available, else cpu)."""


def _median_time(device: torch.device, fn, repeats: int):
    result = fn()  # warm-up
    times = [timed(device, fn)[1] for _ in range(repeats)]
    return result, statistics.median(times)


def _chunk_times(model, rays, repeats: int) -> dict[str, float]:
    """Median seconds of each probe stage on one chunk of collided rays."""
    device, n, mlp = model.device, model.num_probe_samples, model.probe_mlp
    times: dict[str, float] = {}
    samples, times[f"uniform samples ({n} per ray)"] = _median_time(
        device, lambda: model.probe_samples(rays, n), repeats
    )
    x, times["encoding of the samples"] = _median_time(device, lambda: model.probe_inputs(samples), repeats)
    for layer in range(num_probe_layers(mlp)):
        _, times[f"v at layer {layer} (layers 0..{layer})"] = _median_time(
            device, lambda layer=layer: activation_feature(mlp, x, layer), repeats
        )
    _, times[f"full probed MLP ({len(mlp.layers)} layers)"] = _median_time(device, lambda: mlp(x), repeats)
    return times


def measure(cfg: ProbeCost) -> dict[str, float]:
    """Seconds per stage for all rays of the image: ``{stage name: median time}``."""
    if cfg.repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {cfg.repeats}")
    config, pipeline, _, _ = load_pipeline(cfg.load_config, device=cfg.device)
    model = pipeline.model
    loader = pipeline.datamanager.fixed_indices_eval_dataloader
    if not 0 <= cfg.image_idx < len(loader):
        raise InputError(
            f"--image-idx {cfg.image_idx} is out of range: the run has {len(loader)} eval images"
        )
    check_rescale(cfg.rescale)
    bundle = [b for i, (_, b, _) in enumerate(eval_views(model, loader, cfg.image_idx + 1, cfg.rescale))][-1]
    device = model.device
    times: dict[str, float] = {}
    with torch.inference_mode():
        for _, _, rays in model._chunks(bundle):
            for stage, t in _chunk_times(model, rays, cfg.repeats).items():
                times[stage] = times.get(stage, 0.0) + t
        _, times["stock render of the image"] = _median_time(
            device, lambda: model.render_stock(bundle), cfg.repeats
        )
    chunk = model.config.eval_num_rays_per_chunk
    table = Table(title=f"{config.method_name} · {tuple(bundle.shape)} rays in chunks of {chunk} · {device}")
    table.add_column("stage")
    table.add_column("t (ms)", justify="right")
    table.add_column("share of the render", justify="right")
    render = times["stock render of the image"]
    for stage, t in times.items():
        table.add_row(stage, f"{t * 1e3:.1f}", f"{t / render:.2f}")
    CONSOLE.print(table)
    return times


def entrypoint() -> None:
    run_cli(ProbeCost, measure)


if __name__ == "__main__":
    entrypoint()
