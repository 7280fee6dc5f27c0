#!/usr/bin/env python
"""Choose Mip-NeRF's grid cell variance (``GRID_CELL_VARIANCE`` in nerfinternals/models/nerf.py) on selection
views only.

Mip-NeRF's density grid evaluates each node as a Gaussian whose per-axis variance is ``variance`` times the
cell size squared (0: a point). For each candidate variance the grid is filled anew and the grid sampler,
empty rays skipped, renders the run's *selection views* (:mod:`nerfinternals.views`: the val split of a
Blender run whose val cameras are its own, else every other eval image by name) at each
``--fine-samples`` budget; stock renders them too. The choice is the variance with the highest PSNR,
averaged over the budgets (ties: the first candidate). The report views are named in the output and
never rendered here. Writes ``cell_variance.json`` and ``cell_variance.md``.

    python -m benchmarks.choose_cell_variance \\
        --load-config ../shared/checkpoints/lego400/activation-mipnerf/run/config.yml --rescale 0.125 \\
        --max-images 2 --output-dir benchmarks/results/cell-variance
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from nerfinternals.common import (
    atomic_write,
    check_rescale,
    mean_or_none,
    progress_bar,
    rgb_output,
    run_cli,
    write_json,
)
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.metrics import image_metrics
from nerfinternals.utils import machine_name
from nerfinternals.views import split_views

CONSOLE = Console(width=140)


@dataclass
class ChooseCellVariance:
    """Choose Mip-NeRF's grid cell variance on a run's selection views."""

    load_config: Path
    """config.yml of an activation-mipnerf run."""
    output_dir: Path = Path("benchmarks/results/cell-variance")
    """Folder for cell_variance.json and cell_variance.md."""
    variances: tuple[float, ...] = (0.0, 1 / 12, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    """Candidate variances, in cell sizes squared (0: a point; 1/12: a uniform cell; 0.25: half a cell's std)."""
    fine_samples: tuple[int, ...] = (0, 64)
    """Final-pass budgets (0: the model's own) the PSNR is averaged over."""
    grid_resolution: int = 64
    """Nodes per axis of the density grid."""
    rescale: float = 0.125
    """Render the views at this fraction of their resolution."""
    max_images: int | None = 2
    """At most N selection views."""
    device: str | None = None
    """Torch device (default: cuda if available, else cpu)."""
    overwrite: bool = False
    """Replace earlier results in a non-empty output folder."""


def choose(cfg: ChooseCellVariance) -> dict:
    check_rescale(cfg.rescale)
    if not cfg.variances or min(cfg.variances) < 0:
        raise InputError("--variances needs at least one variance, each at least 0")
    out = Path(cfg.output_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not cfg.overwrite)):
        raise InputError(f"output folder {out} is not empty: pass --overwrite or choose another --output-dir")
    if not Path(cfg.load_config).is_file():
        raise InputError(f"config not found: {cfg.load_config}")
    config, pipeline, ckpt, step = load_pipeline(cfg.load_config, device=cfg.device)
    model = pipeline.model
    if not hasattr(model, "GRID_CELL_VARIANCE") or not model.replaced_network.use_integrated_encoding:
        raise InputError(f"{config.method_name} is not a Mip-NeRF run: it has no grid cell variance")
    model.set_inference()
    split = split_views(pipeline.datamanager, cfg.max_images)
    views = list(split.selection.views(model, cfg.rescale))
    shipped = type(model).GRID_CELL_VARIANCE
    psnr: dict[str, list[float]] = {}
    grid = None
    with torch.inference_mode(), progress_bar(CONSOLE) as progress:
        task = progress.add_task(
            "variances", total=len(views) * (1 + len(cfg.variances) * len(cfg.fine_samples))
        )
        for _, bundle, target in views:
            psnr.setdefault("stock", []).append(
                image_metrics(rgb_output(model.render_stock(bundle)).float(), target, None)["psnr"]
            )
            progress.advance(task)
        for variance in cfg.variances:
            model.GRID_CELL_VARIANCE = variance  # this model only; the class keeps the shipped value
            model.__dict__.get("_density_grids", {}).pop((cfg.grid_resolution, "replaced"), None)  # fill anew
            if model.density_grid(cfg.grid_resolution) is grid:
                raise RuntimeError("the density grid was not refilled: the model's grid cache has moved")
            grid = model.density_grid(cfg.grid_resolution)
            for k in cfg.fine_samples:
                for _, bundle, target in views:
                    outputs, _ = model.render_sampled(
                        bundle,
                        "grid",
                        fine_samples=k,
                        skip_empty=True,
                        grid_resolution=cfg.grid_resolution,
                        stage_times=False,
                    )
                    psnr.setdefault(f"{variance}/{k}", []).append(
                        image_metrics(outputs["rgb"].float(), target, None)["psnr"]
                    )
                    progress.advance(task)
    stock = mean_or_none(psnr["stock"])
    rows = [
        {
            "variance": v,
            "psnr_delta": {str(k): mean_or_none(psnr[f"{v}/{k}"]) - stock for k in cfg.fine_samples},
        }
        for v in cfg.variances
    ]
    for row in rows:
        row["mean_psnr_delta"] = mean_or_none(list(row["psnr_delta"].values()))
    best = max(rows, key=lambda r: r["mean_psnr_delta"])
    result = {
        "machine": machine_name(cfg.device),
        "config": str(cfg.load_config),
        "method": config.method_name,
        "checkpoint": str(ckpt),
        "step": step,
        **split.record(),
        "report_views_rendered": False,
        "image_shape": list(views[0][1].shape),
        "rescale": cfg.rescale,
        "grid_resolution": cfg.grid_resolution,
        "fine_samples": list(cfg.fine_samples),
        "rule": "grid sampler with empty rays skipped; the highest PSNR averaged over the budgets",
        "stock_psnr": stock,
        "candidates": rows,
        "chosen": best["variance"],
        "shipped": shipped,
    }
    write_json(out / "cell_variance.json", result)
    atomic_write(out / "cell_variance.md", lambda p: p.write_text(markdown(result)))
    CONSOLE.print(markdown(result), markup=False)
    return result


def markdown(r: dict) -> str:
    h, w = r["image_shape"]
    budgets = r["fine_samples"]
    lines = [
        "# Mip-NeRF grid cell variance, chosen on selection views",
        "",
        f"{r['method']} step {r['step']}; {len(r['selection_views'])} selection view(s) of {w}x{h} px "
        f"({r['view_rule']}): {', '.join(r['selection_views'])}; report views, not rendered here: "
        f"{', '.join(r['report_views'])}; grid {r['grid_resolution']}^3, empty rays skipped; stock "
        f"{r['stock_psnr']:.2f} dB; {r['machine']}",
        "",
        "| variance (cell size²) | "
        + " | ".join(f"ΔPSNR k{k or ' model'}" for k in budgets)
        + " | mean ΔPSNR |",
        "|---|" + "---|" * (len(budgets) + 1),
    ]
    for row in r["candidates"]:
        lines.append(
            f"| {row['variance']:.4g} | "
            + " | ".join(f"{row['psnr_delta'][str(k)]:+.2f}" for k in budgets)
            + f" | {row['mean_psnr_delta']:+.3f} |"
        )
    lines += ["", f"chosen: {r['chosen']:.4g} (shipped: {r['shipped']:.4g}); rule: {r['rule']}", ""]
    return "\n".join(lines)


def entrypoint() -> None:
    run_cli(ChooseCellVariance, choose)


if __name__ == "__main__":
    entrypoint()
