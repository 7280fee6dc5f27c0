#!/usr/bin/env python
"""The paper's analysis figures for one eval image of a trained run (ours or stock NeRF / Mip-NeRF / nerfacto).

- ``maps`` (Fig. 2): activation maps V_l (per-pixel mean of v_l over the ray's uniform samples) of
  the coarse and/or fine network, min-max normalised, magma, beside the ground truth.
- ``gate`` (Fig. 3): the stock coarse-to-fine pipeline run only for pixels with V_l < μ(V_l); the
  others take the background colour. Image, mask, fraction skipped, time and PSNR vs the full render.
- ``rays`` (Fig. 4): for chosen pixels, f_l along the ray (each hidden unit faint, v_l bold), the
  coarse density σ, d̂ for each transform, and the ground-truth depth where the dataset has it.
- ``argmax``: the distance between the argmax of ŵ and of the coarse weights (or GT depth) over all
  pixels, median and 90th percentile, in scene units and as a share of the ray length.

Writes into ``<run dir>/<output-dir>/<image_idx:03>/`` (docs/analysis.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from nerfinternals import analysis
from nerfinternals.common import (
    atomic_write,
    camera_rays,
    check_output,
    fct_names,
    finite_or_none,
    output_root,
    progress_bar,
    rgb_output,
    run_cli,
    timed,
    write_json,
    write_png,
)
from nerfinternals.internals import num_probe_layers
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.metrics import image_metrics
from nerfinternals.utils import warmup_crop

CONSOLE = Console(width=120)
FIGURES = ("maps", "gate", "rays", "argmax")


@dataclass
class Visualize:
    """Write the paper's analysis figures (activation maps, gated fine pass, per-ray plots) and the
    argmax-distance check for one eval image of a trained run."""

    load_config: Path
    """Path to the run's config.yml (ours or stock vanilla-nerf / mipnerf / nerfacto)."""
    layer: tuple[int, ...] = (0, 1, 2)
    """Layer(s) whose activations are observed, 0-based (0 = the paper's l=1)."""
    fct: tuple[int, ...] = (0, 1, 2)
    """Activation -> density function(s) for the per-ray plots and the argmax check: 0 = std, 1 = std_half, 2 = std_half_sq."""
    network: str = "coarse"
    """Network(s) of the activation maps: coarse, fine or both (Mip-NeRF has one network: coarse only)."""
    image_idx: int = 0
    """Index of the image in the run's eval split."""
    pixels: tuple[str, ...] = ()
    """Pixels for the per-ray plots as x,y (column,row), e.g. --pixels 12,8 3,20 (default: three on the object, one on the background)."""
    figures: tuple[str, ...] = FIGURES
    """Which outputs to write: maps (Fig. 2), gate (Fig. 3), rays (Fig. 4), argmax (the distance check)."""
    output_dir: str = "visualize"
    """Output folder: relative to the run folder (where config.yml is), or an absolute path."""
    overwrite: bool = False
    """Replace the results of an earlier run in a non-empty output folder."""
    device: str | None = None
    """Torch device (default: cuda if available, else cpu)."""


# ---- checks (all before anything is written) ---------------------------------------------------
def _parse_pixels(pixels: tuple[str, ...]) -> list[tuple[int, int]]:
    parsed = []
    for text in pixels:
        parts = text.split(",")
        try:
            x, y = (int(p) for p in parts)
        except ValueError:
            raise InputError(f"--pixels {text!r} is not of the form x,y (two integers)") from None
        parsed.append((x, y))
    return parsed


def _check_names(cfg: Visualize) -> tuple[list[str], list[str]]:
    """Transform names and figure kinds; errors for unknown ones."""
    fcts = fct_names(cfg.fct)
    if cfg.network not in (*analysis.NETWORKS, "both"):
        raise InputError(f"unknown --network {cfg.network!r}: choose coarse, fine or both")
    unknown = [f for f in cfg.figures if f not in FIGURES]
    if unknown:
        raise InputError(f"unknown --figures {unknown[0]!r}: choose from {', '.join(FIGURES)}")
    if not cfg.layer:
        raise InputError("--layer needs at least one layer")
    if not cfg.figures:
        raise InputError("--figures needs at least one of " + ", ".join(FIGURES))
    return fcts, list(dict.fromkeys(cfg.figures))


def _check_networks(cfg: Visualize, model, method: str) -> tuple[dict[str, analysis.Probe], list[str]]:
    """The networks to probe (the coarse one for gate, rays and argmax; those of the maps) and
    the names of those whose maps are drawn."""
    names = analysis.available_networks(model) if cfg.network == "both" else [cfg.network]
    if "maps" not in cfg.figures:
        names = []
    try:
        nets = analysis.probes(model, list(dict.fromkeys(["coarse", *names])))
    except ValueError as err:
        raise InputError(f"{method}: {err}") from None
    for name, probe in nets.items():
        n = num_probe_layers(probe.mlp)
        bad = [layer for layer in cfg.layer if not 0 <= layer < n]
        if bad:
            raise InputError(
                f"--layer {bad[0]} is out of range for the {name} network of this {method} model: "
                f"valid layers are 0..{n - 1}"
            )
    return nets, names


def _check_pixels(pixels: list[tuple[int, int]], height: int, width: int) -> None:
    for x, y in pixels:
        if not (0 <= x < width and 0 <= y < height):
            raise InputError(
                f"pixel {x},{y} is outside the {width} x {height} image (x in 0..{width - 1}, y in 0..{height - 1})"
            )


# ---- drawing -----------------------------------------------------------------------------------
def normalise(image: torch.Tensor) -> torch.Tensor:
    """Min-max normalisation to [0, 1] (zeros for a constant image)."""
    lo, hi = image.min(), image.max()
    return (image - lo) / (hi - lo) if hi > lo else torch.zeros_like(image)


def magma(image: torch.Tensor) -> torch.Tensor:
    """An (H, W) map, min-max normalised, through the magma colormap: (H, W, 3) in [0, 1]."""
    rgba = colormaps["magma"](normalise(image.float()).cpu().numpy())
    return torch.from_numpy(rgba[..., :3]).float()


def _save_npy(path: Path, array: torch.Tensor) -> None:
    with path.open("wb") as f:  # a file object: np.save would append ".npy" to the temporary name
        np.save(f, array.float().numpy())


def save_figure(fig: Figure, path: Path) -> None:
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))


def _title(method: str, what: str, layers: list[int] | None = None, fcts: list[str] | None = None) -> str:
    parts = [method, what]
    if layers is not None:
        parts.append("layer " + ", ".join(f"{layer} (ℓ={layer + 1})" for layer in layers))
    if fcts:
        parts.append("fct " + ", ".join(fcts))
    return " · ".join(parts)


def _image_axis(ax, image: torch.Tensor, title: str) -> None:
    ax.imshow(image.cpu().numpy())
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x [px]")
    ax.set_ylabel("y [px]")


def figure_maps(method: str, label: str, target: torch.Tensor, maps: dict[int, torch.Tensor]) -> Figure:
    """Fig. 2: ground truth and one normalised magma map per layer."""
    fig = Figure(figsize=(3.2 * (len(maps) + 1), 3.6), layout="constrained")
    axes = fig.subplots(1, len(maps) + 1, squeeze=False)[0]
    _image_axis(axes[0], target, "ground truth")
    for ax, (layer, act_map) in zip(axes[1:], maps.items(), strict=True):
        im = ax.imshow(normalise(act_map).numpy(), cmap="magma", vmin=0, vmax=1)
        ax.set_title(f"V_l, layer {layer} (ℓ={layer + 1})", fontsize=9)
        ax.set_xlabel("x [px]")
        ax.set_ylabel("y [px]")
    fig.colorbar(im, ax=list(axes[1:]), label="mean activation (min-max normalised)", shrink=0.8)
    fig.suptitle(_title(method, f"activation maps, {label}", list(maps)), fontsize=10)
    return fig


def figure_gate(method: str, layer: int, full, act_map, mask, gated, stats: dict) -> Figure:
    """Fig. 3: full render, activation map, gate mask, gated render."""
    fig = Figure(figsize=(13, 3.9), layout="constrained")
    axes = fig.subplots(1, 4)
    _image_axis(axes[0], full, f"stock coarse-to-fine ({stats['t_full']:.3f} s)")
    im = axes[1].imshow(normalise(act_map).numpy(), cmap="magma", vmin=0, vmax=1)
    axes[1].set_title("V_l (normalised)", fontsize=9)
    axes[1].set_xlabel("x [px]")
    axes[1].set_ylabel("y [px]")
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    _image_axis(axes[2], mask.float().expand(*mask.shape[:2], 3), "fine pass runs (V_l < μ)")
    psnr = stats["psnr_vs_full"]
    _image_axis(
        axes[3],
        gated,
        f"gated ({stats['t_gated']:.3f} s, PSNR vs full {'∞' if psnr is None else f'{psnr:.2f}'} dB)",
    )
    fig.suptitle(
        _title(method, f"gated fine pass, {100 * stats['fraction_skipped']:.1f} % of rays skipped", [layer]),
        fontsize=10,
    )
    return fig


def figure_ray(method: str, profile: analysis.RayProfile, layer: int, fcts: list[str]) -> Figure:
    """Fig. 4: f_l per hidden unit (faint) and v_l (bold); coarse σ; d̂ per transform; GT depth."""
    t = profile.t.numpy()
    fig = Figure(figsize=(8, 8), layout="constrained")
    ax_f, ax_s, ax_d = fig.subplots(3, 1, sharex=True)
    features = profile.features[layer].numpy()
    ax_f.plot(t, features, color="tab:blue", alpha=0.15, linewidth=0.7)
    ax_f.plot([], [], color="tab:blue", alpha=0.4, linewidth=0.7, label="f_l, each hidden unit")
    ax_f.plot(t, features.mean(axis=-1), color="black", linewidth=2.2, label="v_l = mean over units")
    ax_f.set_ylabel("activation")
    ax_s.plot(t, profile.sigma.numpy(), color="tab:red", linewidth=1.6, label="coarse density σ")
    ax_s.set_ylabel("σ")
    for fct, color in zip(fcts, ("tab:green", "tab:purple", "tab:orange"), strict=False):
        d = profile.estimate[layer, fct].numpy()
        peak = d.max()
        ax_d.plot(t, d / peak if peak > 0 else d, color=color, linewidth=1.6, label=f"d̂ ({fct})")
    ax_d.set_ylabel("d̂ / max d̂")
    ax_d.set_xlabel("t along the ray [scene units]")
    if t[-1] / max(t[0], 1e-6) > 50:  # nerfacto: lin-disp samples out to a far plane
        ax_d.set_xscale("log")
    for ax in (ax_f, ax_s, ax_d):
        if profile.gt_depth is not None and np.isfinite(profile.gt_depth):
            ax.axvline(profile.gt_depth, color="gray", linestyle="--", linewidth=1.2, label="GT depth")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    x, y = profile.pixel
    background = profile.gt_depth is not None and not np.isfinite(profile.gt_depth)
    where = f"pixel ({x}, {y})" + (" · background (no GT surface)" if background else "")
    fig.suptitle(_title(method, where, [layer], fcts), fontsize=10)
    return fig


# ---- the run -----------------------------------------------------------------------------------
def visualize(cfg: Visualize) -> dict:
    """Write the requested figures; returns ``{"gate": ..., "argmax_distance": ...}`` (what was computed)."""
    fcts, figures = _check_names(cfg)
    pixels = _parse_pixels(cfg.pixels)
    config, pipeline, ckpt, step = load_pipeline(cfg.load_config, device=cfg.device)
    model, method = pipeline.model, config.method_name
    nets, map_networks = _check_networks(cfg, model, method)
    layers = list(dict.fromkeys(cfg.layer))
    loader = pipeline.datamanager.fixed_indices_eval_dataloader
    num_images = len(pipeline.datamanager.eval_dataset)
    if not 0 <= cfg.image_idx < num_images:
        raise InputError(
            f"--image-idx {cfg.image_idx} is out of range: the eval split has {num_images} image(s)"
        )
    camera, batch = loader.get_camera(cfg.image_idx)
    height, width = int(camera.height), int(camera.width)
    _check_pixels(pixels, height, width)
    out_root = output_root(cfg.load_config, cfg.output_dir)
    check_output(out_root, ckpt, cfg.overwrite)

    out = out_root / f"{cfg.image_idx:03d}"
    device = model.device
    bundle = camera_rays(camera)
    target = model.renderer_rgb.blend_background(batch["image"].to(device))[..., :3]
    gt_depth = analysis.gt_depth_for(pipeline.datamanager.eval_dataset, cfg.image_idx, (height, width))
    meta = {"method": method, "model": type(model).__name__, "checkpoint": str(ckpt), "step": step}
    meta.update(image_idx=cfg.image_idx, device=str(device))
    results: dict = {}
    need_analysis = bool({"maps", "rays", "argmax"} & set(figures))
    steps = (analysis.num_chunks(model, bundle) if need_analysis else 0) + (
        len(layers) + 1 if "gate" in figures else 0
    )
    with torch.inference_mode(), progress_bar(CONSOLE) as progress:
        task = progress.add_task("analysing", total=steps)
        write_png(out / "target.png", target)
        image = None
        if need_analysis:
            image = analysis.analyse_image(
                model, bundle, layers, fcts, list(nets), advance=lambda: progress.advance(task)
            )
        if "maps" in figures:
            _write_maps(out, method, target, image, {name: nets[name] for name in map_networks}, layers)
        if "gate" in figures:
            results["gate"] = _write_gate(out, method, model, bundle, target, layers, meta, progress, task)
        if "argmax" in figures:
            results["argmax_distance"] = image.argmax_distances(gt_depth)
            write_json(
                out / "argmax_distance.json",
                {**meta, "note": _ARGMAX_NOTE, "results": results["argmax_distance"]},
            )
        if "rays" in figures:
            if not pixels:
                # on the object: where GT depth is finite, else where the coarse weights sum >= 0.5
                if gt_depth is not None:
                    hit = torch.isfinite(gt_depth)
                else:
                    hit = image.coarse_accumulation >= analysis.OPAQUE
                pixels = analysis.default_pixels(hit)
            _write_rays(out, method, model, bundle, pixels, layers, fcts, gt_depth, meta, progress)
    if "argmax" in figures:
        _print_argmax(method, results["argmax_distance"], gt_depth is not None)
    if "gate" in figures:
        _print_gate(method, results["gate"])
    CONSOLE.print(f"figures in {out}")
    return results


_ARGMAX_NOTE = (
    "|t(argmax ŵ) - t(argmax w_coarse)| (reference 'coarse': all pixels; 'coarse_opaque': pixels whose "
    "coarse weights sum to >= 0.5) and |t(argmax ŵ) - GT depth| ('gt_depth': pixels with finite GT depth); "
    "t at sample centres of the N uniform samples; share = distance / (far - near)"
)


def _write_maps(out: Path, method: str, target, image: analysis.ImageAnalysis, nets, layers) -> None:
    for name, probe in nets.items():
        maps = {layer: image.maps[name, layer] for layer in layers}
        for layer, act_map in maps.items():
            stem = out / "maps" / f"{name}_layer_{layer:02d}"
            write_png(stem.with_suffix(".png"), magma(act_map))
            atomic_write(stem.with_suffix(".npy"), lambda p, m=act_map: _save_npy(p, m))
        save_figure(figure_maps(method, probe.label, target, maps), out / f"fig2_activation_maps_{name}.png")


def _write_rays(
    out: Path, method: str, model, bundle, pixels, layers, fcts, gt_depth, meta, progress
) -> None:
    task = progress.add_task("ray plots", total=len(pixels) * len(layers))
    for profile in analysis.ray_profiles(model, bundle, pixels, layers, fcts, gt_depth):
        x, y = profile.pixel
        write_json(out / "rays" / f"x{x:03d}_y{y:03d}.json", {**meta, **profile.to_json()})
        for layer in layers:
            fig = figure_ray(method, profile, layer, fcts)
            save_figure(fig, out / f"fig4_ray_x{x:03d}_y{y:03d}_layer_{layer:02d}.png")
            progress.advance(task)


def _write_gate(out: Path, method: str, model, bundle, target, layers, meta, progress, task) -> dict:
    device = model.device
    height, width = bundle.shape
    crop = warmup_crop(bundle)
    model.render_stock(crop)  # warm-up: one-time costs stay out of the timings
    model.render_gated(crop, layers[0])
    full_out, t_full = timed(device, lambda: model.render_stock(bundle))
    full = rgb_output(full_out).to(device)
    write_png(out / "gate" / "full.png", full)
    progress.advance(task)
    full_psnr = finite_or_none(image_metrics(full, target, None)["psnr"])
    stats: dict = {**meta, "t_full": t_full, "psnr_full_vs_target": full_psnr, "layers": {}}
    for layer in layers:
        (gated_out, times), t_gated = timed(device, lambda layer=layer: model.render_gated(bundle, layer))
        gated = rgb_output(gated_out).to(device)
        mask = gated_out["gate_mask"]
        act_map = gated_out["activation_map"][..., 0].cpu()
        entry = {
            "threshold": float(act_map.mean()),
            "fraction_skipped": 1.0 - float(mask.float().mean()),
            "rays_rendered": int(mask.sum()),
            "rays_total": height * width,
            "t_full": t_full,
            "t_gated": t_gated,
            **times,
            "psnr_vs_full": finite_or_none(image_metrics(gated, full, None)["psnr"]),
            "psnr_vs_target": finite_or_none(image_metrics(gated, target, None)["psnr"]),
        }
        stats["layers"][f"layer_{layer:02d}"] = entry
        write_png(out / "gate" / f"layer_{layer:02d}_gated.png", gated)
        write_png(out / "gate" / f"layer_{layer:02d}_mask.png", mask)
        save_figure(
            figure_gate(method, layer, full, act_map, mask.cpu(), gated, entry),
            out / f"fig3_gate_layer_{layer:02d}.png",
        )
        progress.advance(task)
    write_json(out / "gate.json", stats)
    return stats


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def _num(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _print_argmax(method: str, results: dict, has_gt: bool) -> None:
    table = Table(title=f"{method} · argmax distance, estimate ŵ vs reference")
    for col in ("layer", "fct", "reference", "rays", "median", "p90", "median / ray", "p90 / ray"):
        table.add_column(col, justify="left" if col in ("layer", "fct", "reference") else "right")
    for layer, per_fct in results.items():
        for fct, refs in per_fct.items():
            for ref, s in refs.items():
                table.add_row(
                    layer, fct, ref, str(s["num_rays"]), _num(s["median"]), _num(s["p90"]),
                    _pct(s["median_share"]), _pct(s["p90_share"]),
                )  # fmt: skip
    CONSOLE.print(table)
    if not has_gt:
        CONSOLE.print("no ground-truth depth beside the image (<stem>_depth.npy): GT comparison skipped")


def _print_gate(method: str, stats: dict) -> None:
    table = Table(title=f"{method} · gated fine pass (stock pipeline), t_full = {stats['t_full']:.3f} s")
    for col in ("layer", "skipped", "t gated [s]", "PSNR vs full", "PSNR vs target"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for layer, s in stats["layers"].items():
        psnr = s["psnr_vs_full"]
        table.add_row(
            layer,
            _pct(s["fraction_skipped"]),
            f"{s['t_gated']:.3f}",
            "∞ (identical)" if psnr is None else f"{psnr:.2f}",
            _num(s["psnr_vs_target"]),
        )
    CONSOLE.print(table)


def entrypoint() -> None:
    """Console script entry point (``ns-internals-visualize``)."""
    run_cli(Visualize, visualize)


if __name__ == "__main__":
    entrypoint()
