#!/usr/bin/env python
"""Render a trained run's eval images with activation-informed sampling, timed per stage, against stock.

For every eval image and every (layer, fct) pair, the coarse network (NeRF), the coarse pass
(Mip-NeRF) or the first proposal network (nerfacto) is replaced by the density estimate from
layer ``layer`` of that network's MLP; the rest of the pipeline runs as stock. With ``--run-normal``
the stock pipeline renders the same image in the same process as the baseline.

Writes ``<run dir>/<output-dir>/<image_idx:03>/{coarse-to-fine,target}.png`` and ``stats.json``,
one ``layer_LL_ups_U_fct_NAME/`` folder per experiment (``ours.png``, ``target.png``,
``stats.json``), and ``summary.json`` (means over images, time and multiply-add ratios).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nerfinternals.internals import FCT_NAMES, num_probe_layers
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.metrics import LPIPS_BACKBONE, image_metrics
from nerfinternals.models.base import pixel_grid, synchronize

CONSOLE = Console(width=120)


@dataclass
class ActivationDerivedDensity:
    """Load a checkpoint and render its eval images with activation-derived densities instead of the coarse pass."""

    load_config: Path
    """Path to the run's config.yml (ours or stock vanilla-nerf / mipnerf / nerfacto)."""
    layer: tuple[int, ...] = (0, 1, 2)
    """Layer(s) whose activations are observed, 0-based (0 = the paper's l=1)."""
    fct: tuple[int, ...] = (0, 1, 2)
    """Activation -> density function(s): 0 = std, 1 = std_half, 2 = std_half_sq."""
    upsample: bool = False
    """Probe every 2nd pixel per axis with half the samples and upsample the activations."""
    run_normal: bool = True
    """Also render with the stock coarse-to-fine pipeline (the baseline for metrics and times)."""
    output_dir: str = "eval"
    """Output folder: relative to the run folder (where config.yml is), or an absolute path."""
    overwrite: bool = False
    """Replace the results of an earlier evaluation in a non-empty output folder."""
    max_images: int | None = None
    """Evaluate only the first N eval images (default: all)."""
    device: str | None = None
    """Torch device (default: cuda if available, else cpu)."""

    def main(self) -> dict:
        return evaluate(self)


def experiment_name(layer: int, upsample: bool, fct: str) -> str:
    return f"layer_{layer:02d}_ups_{int(upsample)}_fct_{fct}"


# ---- writing ------------------------------------------------------------------------------------
def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    _atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


def write_png(path: Path, image: torch.Tensor) -> None:
    from PIL import Image

    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    _atomic_write(path, lambda p: Image.fromarray(array).save(p, format="PNG"))


# ---- checks -------------------------------------------------------------------------------------
def _check_fct(fcts: tuple[int, ...]) -> list[str]:
    bad = [f for f in fcts if not 0 <= f < len(FCT_NAMES)]
    if bad:
        names = ", ".join(f"{i} = {n}" for i, n in enumerate(FCT_NAMES))
        raise InputError(f"--fct {bad[0]} is out of range: choose from 0..{len(FCT_NAMES) - 1} ({names})")
    return [FCT_NAMES[f] for f in fcts]


def _output_root(cfg: ActivationDerivedDensity) -> Path:
    out = Path(cfg.output_dir)
    return out if out.is_absolute() else Path(cfg.load_config).parent / out


def _check_output(out: Path, ckpt: Path, overwrite: bool) -> None:
    ckpt_dir = ckpt.parent.resolve()
    resolved = out.resolve()
    if resolved == ckpt_dir or ckpt_dir in resolved.parents:
        raise InputError(
            f"output folder {out} is inside the checkpoint folder {ckpt_dir}: choose another --output-dir"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"output folder {out} is not empty: pass --overwrite or choose another --output-dir")


# ---- timing ------------------------------------------------------------------------------------
def _timed(device: torch.device, fn):
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


# ---- the evaluation ---------------------------------------------------------------------------
def evaluate(cfg: ActivationDerivedDensity) -> dict:
    """Run the evaluation described by ``cfg``; returns the summary (also written to summary.json)."""
    fct_names = _check_fct(cfg.fct)
    if not cfg.layer:
        raise InputError("--layer needs at least one layer")
    if cfg.max_images is not None and cfg.max_images < 1:
        raise InputError(f"--max-images must be at least 1, got {cfg.max_images}")
    config, pipeline, ckpt, step = load_pipeline(cfg.load_config, device=cfg.device)
    model = pipeline.model
    n_layers = num_probe_layers(model.probe_mlp)
    bad = [layer for layer in cfg.layer if not 0 <= layer < n_layers]
    if bad:
        raise InputError(
            f"--layer {bad[0]} is out of range for this {config.method_name} model: valid layers are 0..{n_layers - 1}"
        )
    out_root = _output_root(cfg)
    _check_output(out_root, ckpt, cfg.overwrite)
    loader = pipeline.datamanager.fixed_indices_eval_dataloader
    num_images = len(loader) if cfg.max_images is None else min(len(loader), cfg.max_images)
    if num_images == 0:
        raise InputError(
            f"no eval images in the run's data ({config.pipeline.datamanager.data or 'dataparser data'})"
        )

    experiments = [
        (layer, f, experiment_name(layer, cfg.upsample, f)) for layer in cfg.layer for f in fct_names
    ]
    per_image: list[dict] = []

    with torch.inference_mode():
        first_bundle = _rays(next(iter(loader))[0])
        _warm_up(model, first_bundle, experiments, cfg)
        total = num_images * (len(experiments) + int(cfg.run_normal))
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=CONSOLE,
            transient=True,
        )
        with progress:
            task = progress.add_task("rendering", total=total)
            for i, (camera, batch) in enumerate(loader):
                if i >= num_images:
                    break
                per_image.append(
                    _evaluate_image(model, _rays(camera), batch, experiments, cfg, out_root, progress, task)
                )

    summary = _summarise(
        config, model, ckpt, step, per_image, experiments, cfg, bundle_shape=first_bundle.shape
    )
    write_json(out_root / "summary.json", summary)
    _print_table(summary)
    CONSOLE.print(f"results in {out_root}")
    return summary


def _rays(camera):
    """The (H, W) ray bundle of a one-camera ``Cameras`` (as nerfstudio's ``get_outputs_for_camera``)."""
    return camera.generate_rays(camera_indices=0, keep_shape=True)


def _warm_up(model, bundle, experiments, cfg) -> None:
    """Run each path once on a small crop so that one-time costs stay out of the timings."""
    height, width = bundle.shape
    crop = pixel_grid(bundle, range(min(8, height)), range(min(8, width)))
    if cfg.run_normal:
        model.get_outputs_for_camera_ray_bundle(crop)
    for layer, fct, _ in experiments:
        model.render_with_activations(crop, layer, fct, upsample=cfg.upsample)


def _rgb(outputs: dict) -> torch.Tensor:
    return outputs["rgb_fine"] if "rgb_fine" in outputs else outputs["rgb"]


def _evaluate_image(model, bundle, batch, experiments, cfg, out_root, progress, task) -> dict:
    device = model.device
    image_dir = out_root / f"{int(batch['image_idx']):03d}"
    target = model.renderer_rgb.blend_background(batch["image"].to(device))[..., :3]
    stats: dict = {}
    base = None
    if cfg.run_normal:
        outputs, t = _timed(device, lambda: model.get_outputs_for_camera_ray_bundle(bundle))
        rgb = _rgb(outputs).to(device)
        base = {"t": t, "metrics": image_metrics(rgb, target, model.lpips)}
        stats["base"] = base
        write_png(image_dir / "coarse-to-fine.png", rgb)
        write_png(image_dir / "target.png", target)
        progress.advance(task)
    for layer, fct, name in experiments:
        (outputs, stages), t = _timed(
            device,
            lambda layer=layer, fct=fct: model.render_with_activations(bundle, layer, fct, cfg.upsample),
        )
        rgb = outputs["rgb"].to(device)
        metrics = image_metrics(rgb, target, model.lpips)
        metrics["quantitative"] = stages
        stats[name] = {"t": t, "metrics": metrics}
        exp_dir = image_dir / name
        write_png(exp_dir / "ours.png", rgb)
        write_png(exp_dir / "target.png", target)
        exp_stats = {"optimized": metrics, "time": {"t_optimized": t}}
        if base is not None:
            exp_stats["normal"] = base["metrics"]
            exp_stats["time"].update(t_normal=base["t"], percentage=t / base["t"])
        write_json(exp_dir / "stats.json", exp_stats)
        progress.advance(task)
    write_json(image_dir / "stats.json", stats)
    return stats


def _summarise(config, model, ckpt, step, per_image, experiments, cfg, bundle_shape) -> dict:
    pixels = int(bundle_shape[0]) * int(bundle_shape[1])
    base_macs = model.macs_per_ray(None)
    summary: dict = {
        "method": config.method_name,
        "model": type(model).__name__,
        "checkpoint": str(ckpt),
        "step": step,
        "device": str(model.device),
        "num_images": len(per_image),
        "lpips_backbone": LPIPS_BACKBONE,
        "macs_note": "MLP multiply-adds (Linear layers) per image; encodings and compositing not counted",
        "experiments": {},
    }

    def means(key: str) -> dict:
        entries = [s[key] for s in per_image]
        m = {k: _mean([e["metrics"][k] for e in entries]) for k in ("psnr", "ssim", "lpips")}
        if any(e["metrics"]["lpips"] is None for e in entries):
            m["lpips"] = None
        return {"t": _mean([e["t"] for e in entries]), **m}

    base = None
    if cfg.run_normal:
        base = means("base")
        base["macs"] = base_macs * pixels
        summary["base"] = base
    for layer, _, name in experiments:
        exp = means(name)
        exp.update(
            {
                k: _mean([s[name]["metrics"]["quantitative"][k] for s in per_image])
                for k in ("t_act", "t_coarse", "t_fine")
            }
        )
        exp["macs"] = model.macs_per_ray(layer, cfg.upsample) * pixels
        exp["macs_ratio"] = exp["macs"] / (base_macs * pixels)
        if base is not None:
            exp["time_ratio"] = exp["t"] / base["t"]
            exp["psnr_delta"] = exp["psnr"] - base["psnr"]
            exp["ssim_delta"] = exp["ssim"] - base["ssim"]
        summary["experiments"][name] = exp
    return summary


def _fmt(value, spec: str) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _print_table(summary: dict) -> None:
    table = Table(title=f"{summary['method']} · {summary['num_images']} image(s) · {summary['device']}")
    for col in (
        "experiment",
        "PSNR",
        "SSIM",
        f"LPIPS ({summary['lpips_backbone']})",
        "t [s]",
        "t ratio",
        "MAC ratio",
    ):
        table.add_column(col, justify="left" if col == "experiment" else "right")
    base = summary.get("base")
    if base:
        table.add_row(
            "base (stock)",
            _fmt(base["psnr"], ".2f"),
            _fmt(base["ssim"], ".4f"),
            _fmt(base["lpips"], ".4f"),
            _fmt(base["t"], ".3f"),
            "1.000",
            "1.000",
        )
    for name, exp in summary["experiments"].items():
        table.add_row(
            name,
            _fmt(exp["psnr"], ".2f"),
            _fmt(exp["ssim"], ".4f"),
            _fmt(exp["lpips"], ".4f"),
            _fmt(exp["t"], ".3f"),
            _fmt(exp.get("time_ratio"), ".3f"),
            _fmt(exp["macs_ratio"], ".3f"),
        )
    CONSOLE.print(table)


def entrypoint() -> None:
    """Console script entry point (``ns-internals-eval``)."""
    tyro.extras.set_accent_color("bright_yellow")
    cfg = tyro.cli(ActivationDerivedDensity)
    try:
        cfg.main()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    entrypoint()
