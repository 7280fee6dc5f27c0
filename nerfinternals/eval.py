#!/usr/bin/env python
"""Render a trained run's eval images with activation-informed sampling, timed per stage, against stock.

For every eval image and every (layer, fct) pair, the coarse network (NeRF), the coarse pass
(Mip-NeRF) or the first proposal network (nerfacto) is replaced by the density estimate from
layer ``layer`` of that network's MLP; the rest of the pipeline runs as stock. With ``--run-normal``
the stock pipeline renders the same image in the same process as the baseline.

With ``--gate`` the fine pass runs only for pixels whose mean activation along the ray is below the
image mean (the paper's Fig. 3); the others take the background colour.

Writes ``<run dir>/<output-dir>/<image_idx:03>/{coarse-to-fine,target}.png`` and ``stats.json``,
one ``layer_LL_ups_U_fct_NAME[_gate]/`` folder per experiment (``ours.png``, ``target.png``,
``stats.json``, with ``--gate`` also ``gate_mask.png``), and ``summary.json`` (means over images,
time and multiply-add ratios).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from nerfinternals.common import (
    camera_rays,
    check_output,
    mean_or_none,
    output_root,
    progress_bar,
    rgb_output,
    run_cli,
    timed,
    write_json,
    write_png,
)
from nerfinternals.internals import FCT_NAMES, num_probe_layers
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.metrics import LPIPS_BACKBONE, image_metrics
from nerfinternals.models.base import pixel_grid

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
    gate: bool = False
    """Run importance sampling and the fine pass only for pixels whose mean activation along the ray is below the image mean (the paper's Fig. 3); the others take the background colour. Combines with the activation-informed sampling (and --upsample); stats.json reports the fraction of rays skipped."""
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


def experiment_name(layer: int, upsample: bool, fct: str, gate: bool = False) -> str:
    return f"layer_{layer:02d}_ups_{int(upsample)}_fct_{fct}" + ("_gate" if gate else "")


# ---- checks -------------------------------------------------------------------------------------
def _check_fct(fcts: tuple[int, ...]) -> list[str]:
    bad = [f for f in fcts if not 0 <= f < len(FCT_NAMES)]
    if bad:
        names = ", ".join(f"{i} = {n}" for i, n in enumerate(FCT_NAMES))
        raise InputError(f"--fct {bad[0]} is out of range: choose from 0..{len(FCT_NAMES) - 1} ({names})")
    return [FCT_NAMES[f] for f in fcts]


# ---- summaries ----------------------------------------------------------------------------------
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
    out_root = output_root(cfg.load_config, cfg.output_dir)
    check_output(out_root, ckpt, cfg.overwrite)
    loader = pipeline.datamanager.fixed_indices_eval_dataloader
    num_images = len(loader) if cfg.max_images is None else min(len(loader), cfg.max_images)
    if num_images == 0:
        raise InputError(
            f"no eval images in the run's data ({config.pipeline.datamanager.data or 'dataparser data'})"
        )

    experiments = [
        (layer, f, experiment_name(layer, cfg.upsample, f, cfg.gate))
        for layer in cfg.layer
        for f in fct_names
    ]
    per_image: list[dict] = []

    with torch.inference_mode():
        first_bundle = camera_rays(next(iter(loader))[0])
        _warm_up(model, first_bundle, experiments, cfg)
        total = num_images * (len(experiments) + int(cfg.run_normal))
        progress = progress_bar(CONSOLE)
        with progress:
            task = progress.add_task("rendering", total=total)
            for i, (camera, batch) in enumerate(loader):
                if i >= num_images:
                    break
                per_image.append(
                    _evaluate_image(
                        model, camera_rays(camera), batch, experiments, cfg, out_root, progress, task
                    )
                )

    summary = _summarise(
        config, model, ckpt, step, per_image, experiments, cfg, bundle_shape=first_bundle.shape
    )
    write_json(out_root / "summary.json", summary)
    _print_table(summary)
    CONSOLE.print(f"results in {out_root}")
    return summary


def _warm_up(model, bundle, experiments, cfg) -> None:
    """Run each path once on a small crop so that one-time costs stay out of the timings."""
    height, width = bundle.shape
    crop = pixel_grid(bundle, range(min(8, height)), range(min(8, width)))
    if cfg.run_normal:
        model.get_outputs_for_camera_ray_bundle(crop)
    for layer, fct, _ in experiments:
        model.render_with_activations(crop, layer, fct, upsample=cfg.upsample, gate=cfg.gate)


def _evaluate_image(model, bundle, batch, experiments, cfg, out_root, progress, task) -> dict:
    device = model.device
    image_dir = out_root / f"{int(batch['image_idx']):03d}"
    target = model.renderer_rgb.blend_background(batch["image"].to(device))[..., :3]
    stats: dict = {}
    base = None
    if cfg.run_normal:
        outputs, t = timed(device, lambda: model.get_outputs_for_camera_ray_bundle(bundle))
        rgb = rgb_output(outputs).to(device)
        base = {"t": t, "metrics": image_metrics(rgb, target, model.lpips)}
        stats["base"] = base
        write_png(image_dir / "coarse-to-fine.png", rgb)
        write_png(image_dir / "target.png", target)
        progress.advance(task)
    for layer, fct, name in experiments:
        (outputs, stages), t = timed(
            device,
            lambda layer=layer, fct=fct: model.render_with_activations(
                bundle, layer, fct, upsample=cfg.upsample, gate=cfg.gate
            ),
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
        if cfg.gate:
            mask = outputs["gate_mask"]
            gate = {"fraction_skipped": 1.0 - float(mask.float().mean()), "rays_rendered": int(mask.sum())}
            gate["rays_total"] = mask.numel()
            stats[name]["gate"] = exp_stats["gate"] = gate
            write_png(exp_dir / "gate_mask.png", mask)
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
        m = {k: mean_or_none([e["metrics"][k] for e in entries]) for k in ("psnr", "ssim", "lpips")}
        if any(e["metrics"]["lpips"] is None for e in entries):
            m["lpips"] = None
        return {"t": mean_or_none([e["t"] for e in entries]), **m}

    base = None
    if cfg.run_normal:
        base = means("base")
        base["macs"] = base_macs * pixels
        summary["base"] = base
    for layer, _, name in experiments:
        exp = means(name)
        exp.update(
            {
                k: mean_or_none([s[name]["metrics"]["quantitative"][k] for s in per_image])
                for k in ("t_act", "t_coarse", "t_fine")
            }
        )
        rendered = 1.0
        if cfg.gate:
            exp["fraction_skipped"] = mean_or_none([s[name]["gate"]["fraction_skipped"] for s in per_image])
            rendered = 1.0 - exp["fraction_skipped"]
        exp["macs"] = model.macs_per_ray(layer, cfg.upsample, rendered_fraction=rendered) * pixels
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
    gated = any("fraction_skipped" in exp for exp in summary["experiments"].values())
    if gated:
        table.add_column("skipped", justify="right")
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
            *(["—"] if gated else []),
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
            *([_fmt(100 * exp["fraction_skipped"], ".1f") + " %"] if gated else []),
        )
    CONSOLE.print(table)


def entrypoint() -> None:
    """Console script entry point (``ns-internals-eval``)."""
    run_cli(ActivationDerivedDensity, evaluate)


if __name__ == "__main__":
    entrypoint()
