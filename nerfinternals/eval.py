#!/usr/bin/env python
"""Render a trained run's eval images with activation-informed sampling, timed per stage, against stock.

For every eval image and every (layer, fct) pair, the coarse network (NeRF), the coarse pass
(Mip-NeRF) or the first proposal network (nerfacto) is replaced by the density estimate from
layer ``layer`` of that network's MLP; the rest of the pipeline runs as stock. With ``--run-normal``
the stock pipeline renders the same image in the same process as the baseline.

With ``--gate`` the fine pass runs only for pixels whose mean activation along the ray is below the
image mean (the paper's Fig. 3); the others take the background colour. ``--probe-samples`` and
``--in-box`` change where the probe samples (see ``-h``); ``--precision``, ``--rescale`` and
``--keep-near-plane`` apply to the stock baseline and ours alike. ``--auto`` picks the fastest
configuration within ``--max-psnr-drop`` of stock on the run's selection views (recorded in the run
folder, :mod:`nerfinternals.auto`) and evaluates that one on the report views only, never on an image
it was chosen on (:mod:`nerfinternals.views`; both named in ``summary.json``).

Writes ``<run dir>/<output-dir>/<image_idx:03>/{coarse-to-fine,target}.png`` and ``stats.json``,
one ``layer_LL_ups_U_fct_NAME[_gate]/`` folder per experiment (``ours.png``, ``target.png``,
``stats.json``, with ``--gate`` also ``gate_mask.png``), ``settings.json`` (what the results depend
on, written first) and ``summary.json`` (means over images, time and multiply-add ratios). ``--resume``
continues an interrupted evaluation with the same settings at its next image.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from rich.console import Console
from rich.table import Table

from nerfinternals import cost, estimators, kernels
from nerfinternals.common import (
    check_output,
    check_render_size,
    check_rescale,
    eval_views,
    fct_names,
    mean_or_none,
    output_root,
    progress_bar,
    rgb_output,
    run_cli,
    timed,
    write_json,
    write_png,
)
from nerfinternals.estimators import ESTIMATORS, RenderOptions
from nerfinternals.internals import num_probe_layers
from nerfinternals.kernels import Kernels
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.metrics import LPIPS_BACKBONE, image_metrics
from nerfinternals.models.inference import (
    SAMPLERS,
    check_empty_threshold,
    check_fine_samples,
    check_grid_resolution,
    check_initial_samples,
    check_sampler,
    render_kwargs,
)
from nerfinternals.precision import Precision, check_precision, precision_scope
from nerfinternals.utils import ALLOCATORS, allocator_in_effect, use_allocator, warmup_crop
from nerfinternals.views import SELECTIONS, TRAIN_VIEWS, split_views

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
    sampler: tuple[Literal[SAMPLERS], ...] = ("activation",)
    """Estimate(s) to evaluate, each an experiment set: activation (the paper's, every --layer x --fct), grid (the replaced network's density on a --grid-resolution^3 grid, filled once per loaded model: a post hoc density grid), grid-all (nerfacto: every proposal stage replaced by a grid of the field's density, no proposal network at render time; NeRF / Mip-NeRF, with a single coarse stage: the same as grid), hybrid (activation estimate, the grid decides which rays are empty with --skip-empty), stock (the replaced network itself: with --fine-samples, stock at other budgets)."""
    fine_samples: tuple[int, ...] = (0,)
    """Final-pass samples per ray, each an experiment (0: the model's own). NeRF: K importance samples without the 64 uniform originals (stock: 64 + 128); Mip-NeRF: K (stock 128); nerfacto: K field samples (stock 48) and the later proposal stage scaled by K/48."""
    skip_empty: bool = False
    """Rays whose estimate accumulates less than --empty-threshold get the background colour without a final pass (grid, hybrid: the grid's accumulation; activation: the estimate's, zero only for an all-zero estimate; stock: the coarse network's)."""
    empty_threshold: float = 1e-3
    """--skip-empty: accumulation below which a ray is empty (0: none is)."""
    grid_resolution: int = 64
    """Cells per axis of the density grid (grid, grid-all, hybrid)."""
    initial_samples: int = 0
    """Uniform samples per ray the grid weighs (grid, grid-all; 0: as many as the replaced network, nerfacto's 256, NeRF's 64): its look-ups scale with it, and the next stage draws its samples from them."""
    probe_samples: int = 0
    """Samples per ray the probe evaluates (0: as many as the replaced network); fewer are linearly interpolated along the ray onto the replaced network's samples."""
    in_box: bool = False
    """Place the uniform samples (the probe's and the fine pass's originals) on each ray's segment inside the scene box; rays that miss it are not rendered (background). Bounded scenes only (no effect with scene contraction or NDC)."""
    keep_near_plane: bool = False
    """Sample from the training near plane at evaluation too (nerfstudio resets it to 0), for the stock baseline and ours alike."""
    precision: Precision = "fp32"
    """Arithmetic of every render, base and ours: fp32 (exact), tf32 (CUDA only), bf16 / fp16 (autocast). On this project's CPU bf16 is the fastest and fp16 the second (docs/rendering.md, "Precision")."""
    kernels: Kernels = "fast"
    """Kernels of every render, base and ours (nerfinternals.kernels): "fast" nerfstudio's scene contraction and torch hash encoding with the same bits in less time, "compiled" those through torch.compile (compiled once, its time in summary.json; falls back to fast with a warning), "stock" nerfstudio's as shipped."""
    rescale: float = 1.0
    """Render the eval cameras at this fraction of their resolution (targets area-averaged to match), e.g. 0.125 for 400 px full-size runs on a CPU."""
    auto: bool = False
    """Ignore --sampler/--fine-samples/--skip-empty/--layer/--fct/--upsample/--gate/--probe-samples/--in-box: evaluate, on the report views only, the fastest configuration of any sampler and budget whose PSNR on every one of the run's selection views (its val split, else every other eval image by name, or training cameras with --auto-selection train; docs/evaluation.md) is within --max-psnr-drop of stock's (chosen once and recorded in the run folder as nerfinternals_auto.json; reused only while the machine and device, --rescale, --precision, --max-psnr-drop, --keep-near-plane and the config's and checkpoint's contents are the same)."""
    max_psnr_drop: float = 0.1
    """--auto: the PSNR budget in dB against the stock sampler, held on every selection view."""
    auto_selection: Literal[SELECTIONS] = "eval"
    """--auto: choose on eval images never reported on ("eval": the val split, else every other eval image by name) or on evenly spaced training cameras ("train": every eval image is then reported on)."""
    auto_train_views: int = TRAIN_VIEWS
    """--auto --auto-selection train: how many training cameras to choose on."""
    run_normal: bool = True
    """Also render with the stock coarse-to-fine pipeline (the baseline for metrics and times)."""
    output_dir: str = "eval"
    """Output folder: relative to the run folder (where config.yml is), or an absolute path."""
    overwrite: bool = False
    """Replace the results of an earlier evaluation in a non-empty output folder."""
    resume: bool = False
    """Continue an interrupted evaluation in the output folder: images it finished are read back, not rendered again. Only with the same settings (every flag but --output-dir, the checkpoint, the device; recorded in settings.json), else an error."""
    max_images: int | None = None
    """Evaluate only the first N eval images (default: all)."""
    device: str | None = None
    """Torch device (default: cuda if available, else cpu)."""
    allocator: Literal[ALLOCATORS] = "steady"
    """CPU memory for base and ours alike: "steady" keeps freed memory for reuse (on the project's CPU stock nerfacto rendered up to 2x faster so), "default" leaves glibc as it starts, which zero-fills large temporaries afresh for every chunk of rays (docs/rendering.md, "Memory allocation on the CPU"); recorded in summary.json."""

    def main(self) -> dict:
        return evaluate(self)


def experiment_name(**kwargs) -> str:
    """The experiment's folder name of ``render_sampled`` keyword arguments: the estimator's own
    (``layer_LL_ups_U_fct_NAME``, ``hybridR_...``, ``gridR``, ``grid-allR``, ``stock``), then the options
    (:func:`nerfinternals.estimators.experiment_name`)."""
    return estimators.experiment_name(estimators.render_options(kwargs))


def experiment_kwargs(sampler: str, layer: int, fct: str, fine_samples: int, cfg) -> dict:
    """Keyword arguments of the models' ``render_sampled`` for one experiment of ``cfg``."""
    probing = sampler in ("activation", "hybrid")
    return {
        "sampler": sampler,
        "layer": layer,
        "fct": fct,
        "upsample": cfg.upsample and probing,
        "gate": cfg.gate and probing,
        "n_probe": (cfg.probe_samples or None) if probing else None,
        "in_box": cfg.in_box and sampler != "stock",
        "fine_samples": fine_samples,
        "skip_empty": cfg.skip_empty,
        "empty_threshold": cfg.empty_threshold,
        "grid_resolution": cfg.grid_resolution,
        "initial_samples": cfg.initial_samples if ESTIMATORS[sampler].any_initial_samples else 0,
    }


# ---- the evaluation ---------------------------------------------------------------------------
def _check(cfg: ActivationDerivedDensity) -> list[str]:
    fcts = fct_names(cfg.fct)
    if not cfg.layer:
        raise InputError("--layer needs at least one layer")
    if cfg.resume and cfg.overwrite:
        raise InputError("--resume keeps the finished images and --overwrite replaces them: choose one")
    if cfg.max_images is not None and cfg.max_images < 1:
        raise InputError(f"--max-images must be at least 1, got {cfg.max_images}")
    check_rescale(cfg.rescale)
    if cfg.probe_samples < 0 or cfg.probe_samples == 1:
        raise InputError(f"--probe-samples must be 0 or at least 2, got {cfg.probe_samples}")
    if not cfg.sampler:
        raise InputError("--sampler needs at least one sampler")
    if not cfg.fine_samples:
        raise InputError("--fine-samples needs at least one budget (0: the model's own)")
    try:
        for sampler in cfg.sampler:
            check_sampler(sampler)
        for k in cfg.fine_samples:
            check_fine_samples(k)
        check_grid_resolution(cfg.grid_resolution)
        check_initial_samples(cfg.initial_samples)
        check_empty_threshold(cfg.empty_threshold)
    except ValueError as err:
        raise InputError(str(err)) from None
    return fcts


def _experiments(
    cfg: ActivationDerivedDensity, model, method: str, fcts: list[str]
) -> tuple[list[tuple[str, dict]], dict | None]:
    """(name, render_sampled kwargs) of each experiment, with --auto the chosen one (or none), and the --auto
    record (None without --auto)."""
    if cfg.auto:
        from nerfinternals.auto import auto_record

        record = auto_record(
            cfg.load_config,
            cfg.max_psnr_drop,
            device=cfg.device,
            precision=cfg.precision,
            rescale=cfg.rescale,
            keep_near_plane=cfg.keep_near_plane,
            max_images=cfg.max_images,
            selection=cfg.auto_selection,
            train_views=cfg.auto_train_views,
            kernels=cfg.kernels,
            console=CONSOLE,
        )
        settings = {**model.inference_settings(), **record["chosen"]}
        if (
            settings["inference_sampler"] == "stock"
            and not settings["fine_samples"]
            and not settings["skip_empty"]
        ):
            return [], record
        kwargs = render_kwargs(settings)
        return [(experiment_name(**kwargs), kwargs)], record
    if any(s in ("activation", "hybrid") for s in cfg.sampler):
        n_layers = num_probe_layers(model.probe_mlp)
        bad = [layer for layer in cfg.layer if not 0 <= layer < n_layers]
        if bad:
            raise InputError(
                f"--layer {bad[0]} is out of range for this {method} model: valid layers are 0..{n_layers - 1}"
            )
    experiments = []
    for sampler in cfg.sampler:
        probes = (
            [(layer, f) for layer in cfg.layer for f in fcts] if sampler in ("activation", "hybrid") else None
        )
        for k in cfg.fine_samples:
            for layer, f in probes or [(cfg.layer[0], fcts[0])]:
                experiments.append(experiment_kwargs(sampler, layer, f, k, cfg))
    named = {experiment_name(**kwargs): kwargs for kwargs in experiments}
    return list(named.items()), None


def evaluate(cfg: ActivationDerivedDensity) -> dict:
    """Run the evaluation described by ``cfg``; returns the summary (also written to summary.json)."""
    with kernels.kernel_scope(cfg.kernels):
        return _evaluate(cfg)


def _evaluate(cfg: ActivationDerivedDensity) -> dict:
    fcts = _check(cfg)
    use_allocator(cfg.allocator)
    config, pipeline, ckpt, step = load_pipeline(cfg.load_config, device=cfg.device)
    model = pipeline.model
    try:
        check_precision(cfg.precision, model.device)
        model.set_inference(keep_near_plane=cfg.keep_near_plane)
    except ValueError as err:
        raise InputError(str(err)) from None
    out_root = output_root(cfg.load_config, cfg.output_dir)
    check_output(out_root, ckpt, cfg.overwrite or cfg.resume)
    compile_seconds = kernels.compile_model(model, model.device, cfg.kernels)
    loader = pipeline.datamanager.fixed_indices_eval_dataloader
    num_images = len(loader) if cfg.max_images is None else min(len(loader), cfg.max_images)
    if num_images == 0:
        raise InputError(
            f"no eval images in the run's data ({config.pipeline.datamanager.data or 'dataparser data'})"
        )
    cameras = pipeline.datamanager.eval_dataset.cameras
    check_render_size(int(cameras.height.min()), int(cameras.width.min()), cfg.rescale)
    experiments, record = _experiments(cfg, model, config.method_name, fcts)
    views_record = {}
    if record is not None:  # --auto: evaluate on the report views only
        split = split_views(pipeline.datamanager, cfg.max_images, cfg.auto_selection, cfg.auto_train_views)
        shared = sorted(set(record["selection_views"]) & set(split.report.names))
        if shared:
            raise InputError(
                f"--auto chose on {shared[0]}, a view it would be reported on: the data changed since "
                "nerfinternals_auto.json was recorded; delete it to choose again"
            )
        loader, num_images = split.report.loader(model.device), len(split.report.indices)
        views_record = {**split.record(), "selection_views": record["selection_views"]}
    if not experiments and not cfg.run_normal:
        raise InputError(
            "nothing to evaluate: --auto chose the stock sampler and --no-run-normal leaves it out"
        )

    finished = resume_images(out_root, settings_record(cfg, ckpt, model, experiments), cfg.resume)
    per_image: list[dict] = []
    views = eval_views(model, loader, num_images, cfg.rescale)
    with torch.inference_mode():
        first = next(views)
        with precision_scope(cfg.precision, model.device):
            _warm_up(model, first[1], experiments, cfg)
        total = num_images * (len(experiments) + int(cfg.run_normal))
        progress = progress_bar(CONSOLE)
        with progress:
            task = progress.add_task("rendering", total=total)
            for image_idx, bundle, target in [first, *views]:
                if image_idx in finished:
                    per_image.append(finished[image_idx])
                    progress.advance(task, len(experiments) + int(cfg.run_normal))
                    continue
                per_image.append(
                    _evaluate_image(
                        model, image_idx, bundle, target, experiments, cfg, out_root, progress, task
                    )
                )

    summary = _summarise(config, model, ckpt, step, per_image, experiments, cfg, bundle_shape=first[1].shape)
    if compile_seconds is not None:
        summary["settings"]["compile_seconds"] = compile_seconds
    summary.update(views_record)
    write_json(out_root / "summary.json", summary)
    _print_table(summary)
    CONSOLE.print(f"results in {out_root}")
    return summary


SETTINGS_FILE = "settings.json"


def settings_flags(cfg: ActivationDerivedDensity) -> dict:
    """The flags an evaluation's numbers depend on (all but where it reads and writes), as JSON values."""
    skip = {"load_config", "output_dir", "overwrite", "resume"}
    flags = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in skip}
    return json.loads(json.dumps(flags))


def settings_record(cfg: ActivationDerivedDensity, ckpt: Path, model, experiments) -> dict:
    """``settings.json``: the flags, the checkpoint, the device and the experiments of an evaluation."""
    return {
        "flags": settings_flags(cfg),
        "checkpoint": Path(ckpt).name,
        "device": str(model.device),
        "experiments": [name for name, _ in experiments],
    }


def resume_images(out_root: Path, record: dict, resume: bool) -> dict[int, dict]:
    """Write ``record`` as the output folder's settings.json; with ``resume``, first check that a
    non-empty folder holds an evaluation with the same settings and return the per-image stats of the
    images it finished (image index -> stats.json; each is written whole once its image is done)."""
    path = out_root / SETTINGS_FILE
    finished: dict[int, dict] = {}
    if resume and out_root.is_dir() and any(out_root.iterdir()):
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            raise InputError(
                f"cannot resume in {out_root}: no readable {SETTINGS_FILE} records its settings "
                "(pass --overwrite or choose another --output-dir)"
            ) from None
        differ = [k for k in record["flags"] if stored.get("flags", {}).get(k) != record["flags"][k]]
        differ += [k for k in ("checkpoint", "device", "experiments") if stored.get(k) != record[k]]
        if differ:
            raise InputError(
                f"cannot resume in {out_root}: it holds an evaluation with other settings "
                f"({', '.join(differ)}): pass --overwrite or choose another --output-dir"
            )
        for stats in out_root.glob("*/stats.json"):
            if stats.parent.name.isdigit():
                finished[int(stats.parent.name)] = json.loads(stats.read_text())
    write_json(path, record)
    return finished


def _warm_up(model, bundle, experiments, cfg) -> None:
    """Run each path once on a small crop so that one-time costs (and the density grid's fill, reported
    on its own) stay out of the timings."""
    crop = warmup_crop(bundle)
    if cfg.run_normal:
        model.render_stock(crop)
    for _, kwargs in experiments:
        model.render_sampled(crop, **kwargs)


def _render(model, precision: str, fn):
    """``fn()`` at ``precision`` and its wall time, synchronised at the ends only."""

    def run():
        with precision_scope(precision, model.device):
            return fn()

    return timed(model.device, run)


def _evaluate_image(model, image_idx, bundle, target, experiments, cfg, out_root, progress, task) -> dict:
    device = model.device
    image_dir = out_root / f"{image_idx:03d}"
    stats: dict = {}
    base = None
    if cfg.run_normal:
        outputs, t = _render(model, cfg.precision, lambda: model.render_stock(bundle))
        rgb = rgb_output(outputs).float().to(device)
        base = {"t": t, "metrics": image_metrics(rgb, target, model.lpips)}
        stats["base"] = base
        write_png(image_dir / "coarse-to-fine.png", rgb)
        write_png(image_dir / "target.png", target)
        progress.advance(task)
    # Every render is timed as a whole, synchronised at its ends only. Stage times need a synchronisation
    # between stages: off CUDA that is free and they come from the timed render; on CUDA from a second one.
    separate_stages = device.type == "cuda"
    for name, kwargs in experiments:
        (outputs, stages), t = _render(
            model,
            cfg.precision,
            lambda kwargs=kwargs: model.render_sampled(bundle, **kwargs, stage_times=not separate_stages),
        )
        if separate_stages:
            with precision_scope(cfg.precision, device):
                stages = model.render_sampled(bundle, **kwargs, stage_times=True)[1]
        rgb = outputs["rgb"].float().to(device)
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
        if "gate_mask" in outputs:  # --gate, --in-box, --skip-empty: pixels not rendered
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
        "image_shape": [int(bundle_shape[0]), int(bundle_shape[1])],
        "settings": {
            "precision": cfg.precision,
            "rescale": cfg.rescale,
            "keep_near_plane": cfg.keep_near_plane,
            "allocator": allocator_in_effect(model.device),
            "kernels": cfg.kernels,
        },
        "lpips_backbone": LPIPS_BACKBONE,
        "macs_note": "MLP multiply-adds (Linear layers) per image; encodings and compositing not counted",
        "grids": {
            _grid_name(model, k): model.grid_of(k).describe() for _, k in experiments if model.grid_of(k)
        },
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
    for name, kwargs in experiments:
        exp = {"render": kwargs, **means(name)}
        exp.update(
            {
                k: mean_or_none([s[name]["metrics"]["quantitative"][k] for s in per_image])
                for k in ("t_act", "t_coarse", "t_fine")
            }
        )
        rendered = 1.0
        if all("gate" in s[name] for s in per_image):
            exp["fraction_skipped"] = mean_or_none([s[name]["gate"]["fraction_skipped"] for s in per_image])
            rendered = 1.0 - exp["fraction_skipped"]
        exp["macs"] = model.render_macs_per_ray(kwargs, rendered) * pixels
        exp["macs_ratio"] = exp["macs"] / (base_macs * pixels)
        exp["predicted_time_ratio"] = cost.predicted_time_ratio(model, kwargs, rendered)
        if base is not None:
            exp["time_ratio"] = exp["t"] / base["t"]
            exp["psnr_delta"] = exp["psnr"] - base["psnr"]
            exp["ssim_delta"] = exp["ssim"] - base["ssim"]
        summary["experiments"][name] = exp
    return summary


def _grid_name(model, kwargs: dict) -> str:
    """A density grid's key in the summary: its resolution, and "-field" for a grid of nerfacto's field."""
    source = ESTIMATORS[kwargs["sampler"]].grid_source(model, RenderOptions(**kwargs))
    return str(kwargs["grid_resolution"]) + ("-field" if source == "field" else "")


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
        "predicted",
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
            _fmt(exp["predicted_time_ratio"], ".3f"),
            _fmt(exp["macs_ratio"], ".3f"),
            *([_fmt(100 * exp["fraction_skipped"], ".1f") + " %"] if gated else []),
        )
    CONSOLE.print(table)


def entrypoint() -> None:
    """Console script entry point (``ns-internals-eval``)."""
    run_cli(ActivationDerivedDensity, evaluate)


if __name__ == "__main__":
    entrypoint()
