#!/usr/bin/env python
"""Speed and quality of activation-informed rendering against training-free alternatives.

For each checkpoint, in one process and one run, every eval image is rendered with:

- ``base``: the stock coarse-to-fine (NeRF, Mip-NeRF) or proposal (nerfacto) pipeline;
- ``ours``: every layer x fct, with and without ``--upsample``, with and without the Fig. 3 gate;
- alternatives a user could apply to the same trained model without training:
  the stock pipeline with N/2 and N/4 coarse (first proposal) samples, and the fine pass alone on
  uniform weights (no coarse network at all: ``no-coarse``). A NerfAcc occupancy grid needs nerfacc's
  CUDA ops and is reported as not run elsewhere.

Per method: wall time per image (median of ``--repeats`` runs after a warm-up, synchronised on CUDA),
time and multiply-add ratios to base, PSNR / SSIM / LPIPS and their deltas, peak memory (CUDA max
allocated, or the growth of the process RSS on CPU). Writes ``results.json``, ``results.md`` and
``pareto.png`` (time ratio vs PSNR delta) and prints the targets.

    python -m benchmarks.speed_quality --load-config outputs/demo/spheres/*/run/config.yml
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from torch import Tensor

from nerfinternals.common import (
    atomic_write,
    camera_rays,
    mean_or_none,
    progress_bar,
    rgb_output,
    run_cli,
    timed,
    write_json,
)
from nerfinternals.internals import FCT_NAMES, num_probe_layers, weights_from_density
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.metrics import LPIPS_BACKBONE, image_metrics
from nerfinternals.models.base import pixel_grid, synchronize

CONSOLE = Console(width=140)

# Targets the benchmark reports (issue: "report what you measured, including where a target is missed").
TIME_VS_MACS_TOLERANCE = 0.03
BEST_PSNR_LOSS_DB = 1.0
GATE_TIME_RATIO = 0.50
GATE_PSNR_LOSS_DB = 1.5


@dataclass
class SpeedQuality:
    """Benchmark activation-informed rendering against stock and training-free alternatives."""

    load_config: tuple[Path, ...]
    """config.yml of each run to benchmark (ours or stock vanilla-nerf / mipnerf / nerfacto)."""
    output_dir: Path = Path("benchmarks/results")
    """Folder for results.json, results.md and pareto.png."""
    layer: tuple[int, ...] = (0, 1, 2)
    """Probed layers (0-based); layers a model does not have are left out for it."""
    fct: tuple[int, ...] = (0, 1, 2)
    """Transforms: 0 = std, 1 = std_half, 2 = std_half_sq."""
    upsample: bool = True
    """Also run every experiment with --upsample."""
    gate: bool = True
    """Also run every experiment with the Fig. 3 activation gate."""
    repeats: int = 3
    """Timed renders per image and method; the median is reported."""
    max_images: int | None = None
    """Benchmark only the first N eval images (default: all)."""
    device: str | None = None
    """Torch device (default: cuda if available, else cpu)."""
    overwrite: bool = False
    """Replace earlier results in a non-empty output folder."""
    grid_resolution: int = 64
    """Resolution of the post hoc density grid alternative (0: leave it out)."""


@dataclass
class Method:
    name: str
    kind: str  # "base" | "ours" | "alternative"
    render: Callable  # (H, W) RayBundle -> outputs dict
    macs_per_ray: Callable[[dict], float]  # outputs -> multiply-adds per ray
    note: str = ""
    results: dict = field(default_factory=dict)


# ---- alternatives -----------------------------------------------------------------------------------
@contextlib.contextmanager
def coarse_samples(model, n: int) -> Iterator[None]:
    """Temporarily give the stock pipeline ``n`` coarse (first proposal) samples per ray."""
    cfg = model.config
    if hasattr(model, "proposal_sampler"):
        sampler, attr, cfg_attr = (
            model.proposal_sampler,
            "num_proposal_samples_per_ray",
            "num_proposal_samples_per_ray",
        )
        new = (n, *getattr(sampler, attr)[1:])
    else:
        sampler, attr, cfg_attr = model.sampler_uniform, "num_samples", "num_coarse_samples"
        new = n
    old, old_cfg = getattr(sampler, attr), getattr(cfg, cfg_attr)
    setattr(sampler, attr, new)
    setattr(cfg, cfg_attr, new if isinstance(old_cfg, int) else tuple(new))
    try:
        yield
    finally:
        setattr(sampler, attr, old)
        setattr(cfg, cfg_attr, old_cfg)


def render_from_estimate(model, bundle, weights_fn: Callable) -> dict:
    """Everything after the replaced network (``render_from_weights``) on weights from ``weights_fn``.

    ``weights_fn(samples)`` gives (R, N, 1) weights for the N uniform probe samples of each ray: the
    same samples and sample counts as activation-informed rendering, another estimate.
    """
    height, width = bundle.shape
    parts: dict[str, list] = {}
    for _, _, rays in model._chunks(bundle):
        samples = model.probe_samples(rays, model.num_probe_samples)
        for key, value in model.render_from_weights(rays, samples, weights_fn(samples)).items():
            parts.setdefault(key, []).append(value)
    return {key: torch.cat(values).view(height, width, -1) for key, values in parts.items()}


def uniform_weights(samples) -> Tensor:
    """No coarse information at all: every sample of a ray equally likely."""
    n = samples.shape[-1]
    return torch.full((*samples.shape, 1), 1.0 / n, device=samples.frustums.origins.device)


def replaced_density_fn(model) -> Callable[[Tensor], Tensor]:
    """Density (..., 1) at positions (..., 3) of the network that ours replaces (frozen, as trained)."""
    if hasattr(model, "density_fns"):  # nerfacto: the first proposal network
        return model.density_fns[0]
    field = model.field_coarse if hasattr(model, "field_coarse") else model.field

    def density(positions: Tensor) -> Tensor:
        if field.use_integrated_encoding:  # Mip-NeRF: a point is a Gaussian of zero covariance
            covs = torch.zeros(*positions.shape, 3, device=positions.device)
            encoded = field.position_encoding(positions, covs=covs)
        else:
            encoded = field.position_encoding(positions)
        return field.field_output_density(field.mlp_base(encoded))

    return density


class DensityGrid:
    """The replaced network's density, sampled once on a ``res``^3 grid over the scene box.

    A training-free alternative in the spirit of NerfAcc's occupancy grid, in plain torch: filled
    post hoc from the frozen coarse (first proposal) network, then looked up (trilinear) instead of
    evaluating that network per sample. Zero outside the box.
    """

    def __init__(self, model, resolution: int = 64) -> None:
        self.aabb = model.scene_box.aabb.to(model.device).float()
        axes = [
            torch.linspace(float(lo), float(hi), resolution, device=model.device) for lo, hi in self.aabb.T
        ]
        points = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
        density = replaced_density_fn(model)
        values = torch.cat([density(chunk).reshape(-1) for chunk in points.split(1 << 16)])
        # grid_sample reads a (D, H, W) volume at (x, y, z) = (W, H, D) coordinates.
        self.volume = values.view(resolution, resolution, resolution).permute(2, 1, 0)[None, None]
        self.resolution = resolution
        self.num_evaluations = points.shape[0]

    def density(self, positions: Tensor) -> Tensor:
        unit = (positions - self.aabb[0]) / (self.aabb[1] - self.aabb[0]) * 2 - 1
        grid = unit.reshape(1, 1, 1, -1, 3).to(self.volume)
        values = torch.nn.functional.grid_sample(self.volume, grid, align_corners=True, padding_mode="zeros")
        return values.reshape(*positions.shape[:-1])

    def weights(self, samples) -> Tensor:
        return weights_from_density(samples, self.density(samples.frustums.get_positions()))


def methods_for(model, cfg: SpeedQuality) -> list[Method]:
    """Every method benchmarked on ``model``, base first."""
    methods = [
        Method("base", "base", model.get_outputs_for_camera_ray_bundle, lambda _: model.macs_per_ray(None))
    ]
    n_layers = num_probe_layers(model.probe_mlp)
    for layer in [layer for layer in cfg.layer if 0 <= layer < n_layers]:
        for fct in [FCT_NAMES[f] for f in cfg.fct]:
            for ups in (False, True) if cfg.upsample else (False,):
                for gate in (False, True) if cfg.gate else (False,):
                    name = f"ours l{layer} {fct}" + (" ups" if ups else "") + (" gate" if gate else "")

                    def render(bundle, layer=layer, fct=fct, ups=ups, gate=gate):
                        return model.render_with_activations(bundle, layer, fct, upsample=ups, gate=gate)[0]

                    def macs(outputs, layer=layer, ups=ups):
                        kept = float(outputs["gate_mask"].float().mean()) if "gate_mask" in outputs else 1.0
                        return model.macs_per_ray(layer, ups, rendered_fraction=kept)

                    methods.append(Method(name, "ours", render, macs))
    n = model.num_probe_samples
    for div in (2, 4):
        k = max(1, n // div)

        def render(bundle, k=k):
            with coarse_samples(model, k):
                return model.get_outputs_for_camera_ray_bundle(bundle)

        def macs(_, k=k):
            with coarse_samples(model, k):
                return model.macs_per_ray(None)

        methods.append(Method(f"coarse N/{div} ({k})", "alternative", render, macs))
    without_replaced = model.stock_macs_per_ray() - model.skipped_macs_per_ray()
    methods.append(
        Method(
            "no-coarse (uniform)",
            "alternative",
            lambda bundle: render_from_estimate(model, bundle, uniform_weights),
            lambda _: without_replaced,
        )
    )
    if cfg.grid_resolution > 0:
        start = time.perf_counter()
        grid = DensityGrid(model, cfg.grid_resolution)
        synchronize(model.device)
        setup_s = time.perf_counter() - start
        methods.append(
            Method(
                f"density grid {grid.resolution}^3",
                "alternative",
                lambda bundle: render_from_estimate(model, bundle, grid.weights),
                lambda _: without_replaced,
                note=(
                    f"grid filled once in {setup_s:.2f} s ({grid.num_evaluations} evaluations of the replaced "
                    "network, not in the per-image time or MACs); scene box only"
                ),
            )
        )
    return methods


# ---- measuring --------------------------------------------------------------------------------------
class PeakMemory:
    """Peak memory of a block: CUDA max allocated, or the growth of the process RSS (sampled) on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            import psutil

            self._proc = psutil.Process()
            self._start = self._peak = self._proc.memory_info().rss
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, self._proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self._proc.memory_info().rss)
        self.peak_mb = (peak - self._start) / 2**20


def benchmark_run(config_path: Path, cfg: SpeedQuality, progress: Progress) -> dict:
    """Benchmark every method on one run; returns its section of results.json."""
    config, pipeline, ckpt, step = load_pipeline(config_path, device=cfg.device)
    model = pipeline.model
    device = model.device
    loader = pipeline.datamanager.fixed_indices_eval_dataloader
    num_images = len(loader) if cfg.max_images is None else min(len(loader), cfg.max_images)
    if num_images == 0:
        raise InputError(f"no eval images for {config_path}")
    methods = methods_for(model, cfg)
    task = progress.add_task(f"{config.method_name}", total=num_images * len(methods))
    per_method: dict[str, list[dict]] = {m.name: [] for m in methods}
    with torch.inference_mode():
        for i, (camera, batch) in enumerate(loader):
            if i >= num_images:
                break
            bundle = camera_rays(camera)
            image_shape = list(bundle.shape)
            if i == 0:  # warm-up: every path once on a small crop
                h, w = bundle.shape
                crop = pixel_grid(bundle, range(min(8, h)), range(min(8, w)))
                for m in methods:
                    m.render(crop)
            target = model.renderer_rgb.blend_background(batch["image"].to(device))[..., :3]
            for m in methods:
                render = functools.partial(m.render, bundle)
                with PeakMemory(device) as mem:
                    outputs, t0 = timed(device, render)
                times = [t0] + [timed(device, render)[1] for _ in range(cfg.repeats - 1)]
                rgb = rgb_output(outputs).to(device)
                entry = {
                    "t": statistics.median(times),
                    "macs_per_ray": m.macs_per_ray(outputs),
                    "peak_mem_mb": mem.peak_mb,
                    **image_metrics(rgb, target, model.lpips),
                }
                if "gate_mask" in outputs:
                    entry["rendered_fraction"] = float(outputs["gate_mask"].float().mean())
                per_method[m.name].append(entry)
                progress.advance(task)

    base_t = mean_or_none([e["t"] for e in per_method["base"]])
    base_macs = model.macs_per_ray(None)
    base_psnr = mean_or_none([e["psnr"] for e in per_method["base"]])
    base_ssim = mean_or_none([e["ssim"] for e in per_method["base"]])
    rows = {}
    for m in methods:
        entries = per_method[m.name]
        row = {"kind": m.kind, **({"note": m.note} if m.note else {})}
        for key in ("t", "psnr", "ssim", "lpips", "peak_mem_mb", "macs_per_ray", "rendered_fraction"):
            values = [e.get(key) for e in entries]
            row[key] = None if any(v is None for v in values) else mean_or_none(values)
        row["time_ratio"] = row["t"] / base_t
        row["macs_ratio"] = row["macs_per_ray"] / base_macs
        row["psnr_delta"] = row["psnr"] - base_psnr
        row["ssim_delta"] = row["ssim"] - base_ssim
        rows[m.name] = row
    why = "needs nerfacc's CUDA ops" if device.type != "cuda" else "not implemented yet"
    not_run = {"NerfAcc occupancy grid": f"{why}; the plain-torch density grid stands in for it"}
    return {
        "config": str(config_path),
        "method": config.method_name,
        "model": type(model).__name__,
        "checkpoint": str(ckpt),
        "step": step,
        "device": str(device),
        "num_images": num_images,
        "image_shape": image_shape,
        "repeats": cfg.repeats,
        "num_probe_samples": model.num_probe_samples,
        "lpips_backbone": LPIPS_BACKBONE,
        "methods": rows,
        "not_run": not_run,
        "targets": targets(rows),
    }


# ---- targets and the Pareto front --------------------------------------------------------------------
def dominated_by(row: dict, others: dict) -> list[str]:
    """Names of ``others`` at equal-or-lower time ratio with equal-or-higher PSNR (better in one)."""
    return [
        name
        for name, o in others.items()
        if o["time_ratio"] <= row["time_ratio"]
        and o["psnr"] >= row["psnr"]
        and (o["time_ratio"] < row["time_ratio"] or o["psnr"] > row["psnr"])
    ]


def pareto_front(rows: dict) -> list[str]:
    """Names of the rows no other row dominates, ordered by time ratio."""
    front = [name for name, row in rows.items() if not dominated_by(row, rows)]
    return sorted(front, key=lambda name: rows[name]["time_ratio"])


def targets(rows: dict) -> dict:
    """The four targets of the benchmark, each with the figures behind it and whether it is met."""
    ours = {n: r for n, r in rows.items() if r["kind"] == "ours"}
    plain = {n: r for n, r in ours.items() if not n.endswith(" gate")}
    gated = {n: r for n, r in ours.items() if n.endswith(" gate")}
    references = {n: r for n, r in rows.items() if r["kind"] != "ours"}
    result: dict = {}
    if plain:
        gaps = {n: abs(r["time_ratio"] - r["macs_ratio"]) for n, r in plain.items()}
        result["time_ratio_matches_macs"] = {
            "tolerance": TIME_VS_MACS_TOLERANCE,
            "max_gap": max(gaps.values()),
            "median_gap": statistics.median(gaps.values()),
            "met_by": sorted(n for n, g in gaps.items() if g <= TIME_VS_MACS_TOLERANCE),
            "met": all(g <= TIME_VS_MACS_TOLERANCE for g in gaps.values()),
        }
        no_ups = {n: r for n, r in plain.items() if " ups" not in n}
        best = max(no_ups or plain, key=lambda n: plain[n]["psnr"])
        result["best_within_1db"] = {
            "best": best,
            "psnr_delta": plain[best]["psnr_delta"],
            "met": plain[best]["psnr_delta"] >= -BEST_PSNR_LOSS_DB,
        }
        undominated = sorted(n for n, r in ours.items() if not dominated_by(r, references))
        result["on_or_above_front"] = {
            "undominated": undominated,
            "dominated": {n: dominated_by(r, references) for n, r in ours.items() if n not in undominated},
            "met": bool(undominated),
        }
    if gated:
        ok = {
            n: r
            for n, r in gated.items()
            if r["time_ratio"] <= GATE_TIME_RATIO and r["psnr_delta"] >= -GATE_PSNR_LOSS_DB
        }
        fastest = min(gated, key=lambda n: gated[n]["time_ratio"])
        result["gate"] = {
            "time_ratio_max": GATE_TIME_RATIO,
            "psnr_loss_max": GATE_PSNR_LOSS_DB,
            "fastest": fastest,
            "fastest_time_ratio": gated[fastest]["time_ratio"],
            "fastest_psnr_delta": gated[fastest]["psnr_delta"],
            "met_by": sorted(ok),
            "met": bool(ok),
        }
    return result


# ---- reporting ----------------------------------------------------------------------------------------
def _f(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


COLUMNS = ("method", "t [s]", "t ratio", "MAC ratio", "PSNR", "ΔPSNR", "SSIM", "ΔSSIM", "LPIPS", "mem [MB]")


def _cells(name: str, row: dict) -> list[str]:
    return [
        name,
        _f(row["t"], ".3f"),
        _f(row["time_ratio"], ".3f"),
        _f(row["macs_ratio"], ".3f"),
        _f(row["psnr"], ".2f"),
        _f(row["psnr_delta"], "+.2f"),
        _f(row["ssim"], ".4f"),
        _f(row["ssim_delta"], "+.4f"),
        _f(row["lpips"], ".4f"),
        _f(row["peak_mem_mb"], ".1f"),
    ]


def _target_lines(t: dict) -> list[str]:
    lines = []
    if "time_ratio_matches_macs" in t:
        x = t["time_ratio_matches_macs"]
        lines.append(
            f"time ratio within {x['tolerance']} of MAC ratio: {'met' if x['met'] else 'missed'} "
            f"(median gap {x['median_gap']:.3f}, max {x['max_gap']:.3f}; met by {len(x['met_by'])})"
        )
        x = t["best_within_1db"]
        lines.append(
            f"best layer/fct within {BEST_PSNR_LOSS_DB} dB of base: {'met' if x['met'] else 'missed'} "
            f"({x['best']}: {x['psnr_delta']:+.2f} dB)"
        )
        x = t["on_or_above_front"]
        lines.append(
            f"ours on or above the alternatives' Pareto front: {'met' if x['met'] else 'missed'} "
            f"({len(x['undominated'])} of {len(x['undominated']) + len(x['dominated'])} experiments undominated)"
        )
    if "gate" in t:
        x = t["gate"]
        lines.append(
            f"gate: time ratio <= {x['time_ratio_max']} at <= {x['psnr_loss_max']} dB loss: "
            f"{'met' if x['met'] else 'missed'} (fastest {x['fastest']}: ratio {x['fastest_time_ratio']:.3f}, "
            f"{x['fastest_psnr_delta']:+.2f} dB)"
        )
    return lines


def markdown(results: dict) -> str:
    out = ["# Speed / quality benchmark", ""]
    for run in results["runs"]:
        h, w = run["image_shape"]
        out += [
            f"## {run['method']} ({run['model']}, step {run['step']})",
            "",
            f"{run['num_images']} eval image(s) of {w}x{h} px on {run['device']} ({results['machine']}); "
            f"median of {run['repeats']} renders per image after a warm-up; N = {run['num_probe_samples']} "
            f"probe samples; LPIPS backbone {run['lpips_backbone']}; memory: "
            + ("CUDA peak allocated" if run["device"].startswith("cuda") else "growth of process RSS"),
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "---|" * len(COLUMNS),
        ]
        out += ["| " + " | ".join(_cells(name, row)) + " |" for name, row in run["methods"].items()]
        out += [""] + [f"- {name}: {row['note']}" for name, row in run["methods"].items() if "note" in row]
        out += [f"- {name}: not run ({why})" for name, why in run["not_run"].items()]
        out += [f"- {line}" for line in _target_lines(run["targets"])] + [""]
    return "\n".join(out)


def pareto_plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 5 * len(runs)), squeeze=False)
    colors = {0: "tab:blue", 1: "tab:orange", 2: "tab:green"}
    for ax, run in zip(axes[:, 0], runs, strict=True):
        rows = run["methods"]
        labelled: set[str] = set()
        for name, r in rows.items():
            if r["kind"] == "base":
                style, label = dict(marker="*", s=220, color="black"), "base (stock)"
            elif r["kind"] == "alternative":
                style, label = dict(marker="s", s=70, color="tab:red"), name
            else:
                layer = int(name.split()[1][1:])
                gate, ups = name.endswith(" gate"), " ups" in name
                style = dict(
                    marker="^" if gate else "o",
                    s=45,
                    facecolors="none" if ups else colors.get(layer, "gray"),
                    edgecolors=colors.get(layer, "gray"),
                )
                label = f"ours layer {layer}" + (" + upsample" if ups else "") + (" + gate" if gate else "")
            ax.scatter(r["time_ratio"], r["psnr_delta"], label=None if label in labelled else label, **style)
            labelled.add(label)
            if r["kind"] != "ours":
                ax.annotate(name, (r["time_ratio"], r["psnr_delta"]), fontsize=7, xytext=(4, 4),
                            textcoords="offset points")  # fmt: skip
        reference = {n: r for n, r in rows.items() if r["kind"] != "ours"}
        front = pareto_front(reference)
        ax.step([reference[n]["time_ratio"] for n in front], [reference[n]["psnr_delta"] for n in front],
                where="post", color="tab:red", alpha=0.5, linestyle="--", label="alternatives' Pareto front")  # fmt: skip
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.set_xlabel("time ratio to base (lower is faster)")
        ax.set_ylabel("PSNR delta to base [dB]")
        ax.set_title(f"{run['method']} · {run['num_images']} image(s) · {run['device']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)


def _machine() -> str:
    import os
    import platform

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return (
        f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"
    )


def run(cfg: SpeedQuality) -> dict:
    """Benchmark every run of ``cfg``; writes results.json, results.md and pareto.png."""
    if not cfg.load_config:
        raise InputError("--load-config needs at least one config.yml")
    if cfg.repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {cfg.repeats}")
    bad = [f for f in cfg.fct if not 0 <= f < len(FCT_NAMES)]
    if bad:
        raise InputError(f"--fct {bad[0]} is out of range: choose from 0..{len(FCT_NAMES) - 1}")
    out = Path(cfg.output_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not cfg.overwrite)):
        raise InputError(f"output folder {out} is not empty: pass --overwrite or choose another --output-dir")
    missing = [p for p in cfg.load_config if not Path(p).is_file()]
    if missing:
        raise InputError(f"config not found: {missing[0]}")
    results: dict = {"machine": _machine(), "runs": []}
    progress = progress_bar(CONSOLE)
    with progress:
        for path in cfg.load_config:
            results["runs"].append(benchmark_run(Path(path), cfg, progress))
    write_json(out / "results.json", results)
    atomic_write(out / "results.md", lambda p: p.write_text(markdown(results)))
    pareto_plot(results, out / "pareto.png")
    for run_result in results["runs"]:
        table = Table(title=f"{run_result['method']} · {run_result['device']} · {results['machine']}")
        for col in COLUMNS:
            table.add_column(col, justify="left" if col == "method" else "right")
        for name, row in run_result["methods"].items():
            table.add_row(*_cells(name, row))
        CONSOLE.print(table)
        for line in _target_lines(run_result["targets"]):
            CONSOLE.print(f"  {line}")
    CONSOLE.print(f"results in {out}")
    return results


def entrypoint() -> None:
    run_cli(SpeedQuality, run)


if __name__ == "__main__":
    entrypoint()
