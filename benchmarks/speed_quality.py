#!/usr/bin/env python
"""Speed and quality of activation-informed rendering against training-free alternatives.

For each checkpoint, in one process and one run, every eval image is rendered with:

- ``base``: the stock coarse-to-fine (NeRF, Mip-NeRF) or proposal (nerfacto) pipeline;
- ``ours``: every layer x fct, as the paper runs it, with ``--upsample``, with the Fig. 3 gate, and
  with the sampling options (half the probe samples along the ray; the uniform samples inside the
  scene box; both);
- alternatives a user could apply to the same trained model without training:
  the stock pipeline with N/2 and N/4 coarse (first proposal) samples, the fine pass alone on
  uniform weights (no coarse network at all: ``no-coarse``), the replaced network's density sampled
  once on a grid (``density grid``), and, on CUDA, NerfAcc's occupancy grid filled post hoc from that
  density (:mod:`benchmarks.occgrid`; nerfacc's ray marching has no CPU kernels).

Every method runs at every ``--precision`` (base included), on the same images, with the same
``--rescale`` and near plane. Per method: wall time per image (median of ``--repeats`` runs after a
warm-up, synchronised on CUDA), time and multiply-add ratios to base, PSNR / SSIM / LPIPS and their
deltas, peak memory (CUDA max allocated, or the growth of the process RSS on CPU). Writes
``results.json``, ``results.md`` and ``pareto.png`` (time ratio vs PSNR delta) and prints the
targets, among them whether, for every alternative, one of ours is at least as fast with at least
its PSNR.

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

from benchmarks.occgrid import NerfAccGrid, fine_field
from nerfinternals.common import (
    atomic_write,
    check_rescale,
    eval_views,
    fct_names,
    mean_or_none,
    progress_bar,
    rgb_output,
    run_cli,
    timed,
    write_json,
)
from nerfinternals.internals import FCT_NAMES, linear_macs, num_probe_layers, weights_from_density
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.metrics import LPIPS_BACKBONE, image_metrics
from nerfinternals.precision import Precision, check_precision, precision_scope
from nerfinternals.utils import machine_name, synchronize, warmup_crop

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
    """Also run every experiment (as the paper runs it, and with --upsample) with the Fig. 3 activation gate."""
    sampling: bool = True
    """Also run every layer x fct with the sampling options: half the probe samples (interpolated along the ray), the uniform samples inside the scene box (bounded scenes), and both."""
    precision: tuple[Precision, ...] = ("fp32",)
    """Run every method (base included) at each of these: fp32, tf32 (CUDA only), bf16, fp16. Ratios and deltas are to base at the first one; ΔPSNR at the same precision is reported too."""
    rescale: float = 1.0
    """Render the eval cameras at this fraction of their resolution (targets area-averaged to match)."""
    keep_near_plane: bool = False
    """Every method (base included) samples from the training near plane at evaluation (nerfstudio resets it to 0)."""
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
    occgrid_resolution: int = 128
    """Resolution of NerfAcc's occupancy grid alternative (CUDA only; 0: leave it out)."""


@dataclass
class Method:
    name: str
    kind: str  # "base" | "ours" | "alternative"
    render: Callable  # (H, W) RayBundle -> outputs dict
    macs_per_ray: Callable[[dict], float]  # outputs -> multiply-adds per ray
    note: str = ""
    config: dict = field(default_factory=dict)  # ours: render_with_activations keyword arguments


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


def ours_variants(model, cfg: SpeedQuality) -> list[tuple[str, dict]]:
    """(name suffix, render_with_activations options) of ours for each layer x fct."""
    plain = [("", {})] + ([(" ups", {"upsample": True})] if cfg.upsample else [])
    variants = plain + ([(f"{name} gate", {**kw, "gate": True}) for name, kw in plain] if cfg.gate else [])
    if cfg.sampling:
        half = model.num_probe_samples // 2
        variants.append((f" n{half}", {"n_probe": half}))
        if model.probe_box() is not None:
            variants += [(" box", {"in_box": True}), (f" n{half} box", {"n_probe": half, "in_box": True})]
    return variants


def methods_for(model, cfg: SpeedQuality) -> list[Method]:
    """Every method benchmarked on ``model``, base first."""
    methods = [Method("base", "base", model.render_stock, lambda _: model.macs_per_ray(None))]
    n_layers = num_probe_layers(model.probe_mlp)
    for layer in [layer for layer in cfg.layer if 0 <= layer < n_layers]:
        for fct in [FCT_NAMES[f] for f in cfg.fct]:
            for suffix, options in ours_variants(model, cfg):
                kwargs = {
                    "layer": layer,
                    "fct": fct,
                    "upsample": False,
                    "gate": False,
                    "n_probe": None,
                    "in_box": False,
                }
                kwargs.update(options)

                def render(bundle, kwargs=kwargs):
                    return model.render_with_activations(bundle, **kwargs)[0]

                def macs(outputs, kwargs=kwargs):
                    kept = float(outputs["gate_mask"].float().mean()) if "gate_mask" in outputs else 1.0
                    probed = 1.0 if kwargs["gate"] or kwargs["upsample"] else kept
                    return model.macs_per_ray(
                        kwargs["layer"],
                        kwargs["upsample"],
                        kept,
                        num_samples=kwargs["n_probe"],
                        probed_fraction=probed,
                    )

                methods.append(Method(f"ours l{layer} {fct}{suffix}", "ours", render, macs, config=kwargs))
    n = model.num_probe_samples
    for div in (2, 4):
        k = max(1, n // div)

        def render(bundle, k=k):
            with coarse_samples(model, k):
                return model.render_stock(bundle)

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
    if cfg.occgrid_resolution > 0 and not occgrid_not_run(model):
        start = time.perf_counter()
        occ = NerfAccGrid(model, replaced_density_fn(model), cfg.occgrid_resolution)
        synchronize(model.device)
        setup_s = time.perf_counter() - start
        per_sample = linear_macs(fine_field(model))
        methods.append(
            Method(
                f"NerfAcc occupancy grid {cfg.occgrid_resolution}^3",
                "alternative",
                occ.render,
                lambda outputs: float(outputs["samples"].float().mean()) * per_sample,
                note=(
                    f"nerfacc.OccGridEstimator filled once in {setup_s:.2f} s from the replaced network's density "
                    f"({100 * occ.occupied_fraction:.1f} % of cells occupied); marching step {occ.step:.4f} "
                    "(the stock fine pass's mean spacing), fine network on the occupied samples only"
                ),
            )
        )
    return methods


def occgrid_not_run(model) -> str | None:
    """Why NerfAcc's occupancy grid cannot run for ``model`` here (None: it can)."""
    if model.device.type != "cuda":
        return "needs nerfacc's CUDA ray marching (no CUDA device here); the plain-torch density grid stands in for it"
    if model.probe_box() is None:
        return "the scene is unbounded (scene contraction or NDC): no box for the grid"
    try:
        import nerfacc  # noqa: F401
    except ImportError as err:
        return f"nerfacc is not importable ({err})"
    return None


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


def _suffix(precision: str, cfg: SpeedQuality) -> str:
    """Method names carry their precision when the benchmark runs several."""
    return f" @{precision}" if len(cfg.precision) > 1 else ""


def benchmark_run(config_path: Path, cfg: SpeedQuality, progress: Progress) -> dict:
    """Benchmark every method on one run; returns its section of results.json."""
    config, pipeline, ckpt, step = load_pipeline(config_path, device=cfg.device)
    model = pipeline.model
    device = model.device
    try:
        for precision in cfg.precision:
            check_precision(precision, device)
        model.set_inference(keep_near_plane=cfg.keep_near_plane)
    except ValueError as err:
        raise InputError(str(err)) from None
    loader = pipeline.datamanager.fixed_indices_eval_dataloader
    num_images = len(loader) if cfg.max_images is None else min(len(loader), cfg.max_images)
    if num_images == 0:
        raise InputError(f"no eval images for {config_path}")
    methods = methods_for(model, cfg)
    task = progress.add_task(f"{config.method_name}", total=num_images * len(methods) * len(cfg.precision))
    per_method: dict[tuple[str, str], list[dict]] = {(m.name, p): [] for p in cfg.precision for m in methods}
    with torch.inference_mode():
        for i, (_, bundle, target) in enumerate(eval_views(model, loader, num_images, cfg.rescale)):
            image_shape = list(bundle.shape)
            for precision in cfg.precision:
                with precision_scope(precision, device):
                    if i == 0:  # warm-up: every path once on a small crop
                        crop = warmup_crop(bundle)
                        for m in methods:
                            m.render(crop)
                    for m in methods:
                        render = functools.partial(m.render, bundle)
                        with PeakMemory(device) as mem:
                            outputs, t0 = timed(device, render)
                        times = [t0] + [timed(device, render)[1] for _ in range(cfg.repeats - 1)]
                        rgb = rgb_output(outputs).float().to(device)
                        entry = {
                            "t": statistics.median(times),
                            "macs_per_ray": m.macs_per_ray(outputs),
                            "peak_mem_mb": mem.peak_mb,
                            **image_metrics(rgb, target, model.lpips),
                        }
                        if "gate_mask" in outputs:
                            entry["rendered_fraction"] = float(outputs["gate_mask"].float().mean())
                        per_method[(m.name, precision)].append(entry)
                        progress.advance(task)

    reference = cfg.precision[0]
    base_macs = model.macs_per_ray(None)

    def mean_of(name: str, precision: str, key: str) -> float | None:
        return mean_or_none([e[key] for e in per_method[(name, precision)]])

    rows = {}
    for precision in cfg.precision:
        for m in methods:
            entries = per_method[(m.name, precision)]
            row = {"kind": m.kind, "precision": precision, **({"note": m.note} if m.note else {})}
            if m.config:
                row["config"] = m.config
            for key in ("t", "psnr", "ssim", "lpips", "peak_mem_mb", "macs_per_ray", "rendered_fraction"):
                values = [e.get(key) for e in entries]
                row[key] = None if any(v is None for v in values) else mean_or_none(values)
            row["macs_ratio"] = row["macs_per_ray"] / base_macs
            for tag, base_precision in (("", reference), ("_same_precision", precision)):
                row[f"time_ratio{tag}"] = row["t"] / mean_of("base", base_precision, "t")
                row[f"psnr_delta{tag}"] = row["psnr"] - mean_of("base", base_precision, "psnr")
                row[f"ssim_delta{tag}"] = row["ssim"] - mean_of("base", base_precision, "ssim")
            rows[m.name + _suffix(precision, cfg)] = row
    not_run = {}
    why = occgrid_not_run(model) if cfg.occgrid_resolution > 0 else None
    if why:
        not_run["NerfAcc occupancy grid"] = why
    by_precision = {
        p: targets(
            {
                n: {
                    **r,
                    "time_ratio": r["time_ratio_same_precision"],
                    "psnr_delta": r["psnr_delta_same_precision"],
                }
                for n, r in rows.items()
                if r["precision"] == p
            }
        )
        for p in cfg.precision
    }
    return {
        "config": str(config_path),
        "method": config.method_name,
        "model": type(model).__name__,
        "checkpoint": str(ckpt),
        "step": step,
        "device": str(device),
        "num_images": num_images,
        "image_shape": image_shape,
        "rescale": cfg.rescale,
        "keep_near_plane": cfg.keep_near_plane,
        "precisions": list(cfg.precision),
        "repeats": cfg.repeats,
        "num_probe_samples": model.num_probe_samples,
        "lpips_backbone": LPIPS_BACKBONE,
        "methods": rows,
        "not_run": not_run,
        "targets": by_precision[reference],
        "targets_by_precision": by_precision,
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
    plain = {n: r for n, r in ours.items() if not r["config"]["gate"]}
    gated = {n: r for n, r in ours.items() if r["config"]["gate"]}
    references = {n: r for n, r in rows.items() if r["kind"] != "ours"}
    alternatives = {n: r for n, r in rows.items() if r["kind"] == "alternative"}
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
        no_ups = {n: r for n, r in plain.items() if not r["config"]["upsample"]}
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
    if ours and alternatives:
        ahead, shortfall = {}, {}
        for alt, a in alternatives.items():
            ahead[alt] = sorted(n for n, r in ours.items() if r["t"] <= a["t"] and r["psnr"] >= a["psnr"])
            as_fast = [n for n, r in ours.items() if r["t"] <= a["t"]]
            if not ahead[alt] and as_fast:  # the best of ours at its speed, and what it lacks
                best = max(as_fast, key=lambda n: ours[n]["psnr"])
                shortfall[alt] = {"best_as_fast": best, "psnr_short_db": a["psnr"] - ours[best]["psnr"]}
        result["ahead_of_every_alternative"] = {
            "rule": "for each alternative, one of ours with time <= its time and PSNR >= its PSNR",
            "ahead": ahead,
            "not_ahead_of": sorted(alt for alt, names in ahead.items() if not names),
            "shortfall": shortfall,
            "met": all(ahead.values()),
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
PRECISION_COLUMN = "ΔPSNR to base at its precision"


def _columns(run: dict) -> tuple[str, ...]:
    return COLUMNS + ((PRECISION_COLUMN,) if len(run["precisions"]) > 1 else ())


def _cells(name: str, row: dict, run: dict) -> list[str]:
    cells = [
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
    return cells + ([_f(row["psnr_delta_same_precision"], "+.2f")] if len(run["precisions"]) > 1 else [])


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
    if "ahead_of_every_alternative" in t:
        x = t["ahead_of_every_alternative"]
        behind = "; ".join(
            f"{alt}"
            + (
                f" (best of ours as fast: {sh['best_as_fast']}, {sh['psnr_short_db']:.2f} dB short)"
                if (sh := x["shortfall"].get(alt))
                else " (none of ours as fast)"
            )
            for alt in x["not_ahead_of"]
        )
        lines.append(
            f"ours ahead of every alternative (as fast, PSNR at least as high): {'met' if x['met'] else 'missed'}"
            + (f"; not ahead of: {behind}" if behind else "")
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
            + ("CUDA peak allocated" if run["device"].startswith("cuda") else "growth of process RSS")
            + f"; rescale {run['rescale']}; near plane at eval: "
            + ("the training one" if run["keep_near_plane"] else "0 (nerfstudio's reset)")
            + f"; precision {', '.join(run['precisions'])} (ratios and deltas to base at {run['precisions'][0]})",
            "",
            "| " + " | ".join(_columns(run)) + " |",
            "|" + "---|" * len(_columns(run)),
        ]
        out += ["| " + " | ".join(_cells(name, row, run)) + " |" for name, row in run["methods"].items()]
        notes = {name.split(" @")[0]: row["note"] for name, row in run["methods"].items() if "note" in row}
        out += [""] + [f"- {name}: {note}" for name, note in notes.items()]
        out += [f"- {name}: not run ({why})" for name, why in run["not_run"].items()]
        for precision, t in run["targets_by_precision"].items():
            prefix = f"[{precision}] " if len(run["precisions"]) > 1 else ""
            out += [f"- {prefix}{line}" for line in _target_lines(t)]
        out += [""]
    return "\n".join(out)


def pareto_plot(results: dict, path: Path) -> None:
    """Time ratio vs ΔPSNR (to base at the same precision), one panel per run and precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(run, p) for run in results["runs"] for p in run["precisions"]]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 5 * len(panels)), squeeze=False)
    colors = {0: "tab:blue", 1: "tab:orange", 2: "tab:green"}
    for ax, (run, precision) in zip(axes[:, 0], panels, strict=True):
        rows = {n: r for n, r in run["methods"].items() if r["precision"] == precision}
        x = {n: r["time_ratio_same_precision"] for n, r in rows.items()}
        y = {n: r["psnr_delta_same_precision"] for n, r in rows.items()}
        labelled: set[str] = set()
        for name, r in rows.items():
            if r["kind"] == "base":
                style, label = dict(marker="*", s=220, color="black"), "base (stock)"
            elif r["kind"] == "alternative":
                style, label = dict(marker="s", s=70, color="tab:red"), name.split(" @")[0]
            else:
                c = r["config"]
                color = colors.get(c["layer"], "gray")
                sampling = c["in_box"] or c["n_probe"]
                marker = "^" if c["gate"] else ("D" if sampling else "o")
                style = dict(marker=marker, s=45, facecolors="none" if c["upsample"] or c["n_probe"] else color,
                             edgecolors=color)  # fmt: skip
                label = (
                    f"ours layer {c['layer']}"
                    + (" + upsample" if c["upsample"] else "")
                    + (" + gate" if c["gate"] else "")
                    + (" + in box" if c["in_box"] else "")
                    + (" + N/2 probe" if c["n_probe"] else "")
                )
            ax.scatter(x[name], y[name], label=None if label in labelled else label, **style)
            labelled.add(label)
            if r["kind"] == "alternative":
                ax.annotate(name.split(" @")[0], (x[name], y[name]), fontsize=7, xytext=(4, 4),
                            textcoords="offset points")  # fmt: skip
        reference = {n: {"time_ratio": x[n], "psnr": y[n]} for n, r in rows.items() if r["kind"] != "ours"}
        front = pareto_front(reference)
        ax.step([x[n] for n in front], [y[n] for n in front],
                where="post", color="tab:red", alpha=0.5, linestyle="--", label="alternatives' Pareto front")  # fmt: skip
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.set_xlabel("time ratio to base (lower is faster)")
        ax.set_ylabel("PSNR delta to base [dB]")
        h, w = run["image_shape"]
        ax.set_title(
            f"{run['method']} · {run['num_images']} image(s) of {w}x{h} px · {run['device']} · {precision}"
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def run(cfg: SpeedQuality) -> dict:
    """Benchmark every run of ``cfg``; writes results.json, results.md and pareto.png."""
    if not cfg.load_config:
        raise InputError("--load-config needs at least one config.yml")
    if cfg.repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {cfg.repeats}")
    fct_names(cfg.fct)
    check_rescale(cfg.rescale)
    if not cfg.precision:
        raise InputError("--precision needs at least one precision")
    out = Path(cfg.output_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not cfg.overwrite)):
        raise InputError(f"output folder {out} is not empty: pass --overwrite or choose another --output-dir")
    missing = [p for p in cfg.load_config if not Path(p).is_file()]
    if missing:
        raise InputError(f"config not found: {missing[0]}")
    results: dict = {"machine": machine_name(), "runs": []}
    progress = progress_bar(CONSOLE)
    with progress:
        for path in cfg.load_config:
            results["runs"].append(benchmark_run(Path(path), cfg, progress))
    write_json(out / "results.json", results)
    atomic_write(out / "results.md", lambda p: p.write_text(markdown(results)))
    pareto_plot(results, out / "pareto.png")
    for run_result in results["runs"]:
        table = Table(title=f"{run_result['method']} · {run_result['device']} · {results['machine']}")
        for col in _columns(run_result):
            table.add_column(col, justify="left" if col == "method" else "right")
        for name, row in run_result["methods"].items():
            table.add_row(*_cells(name, row, run_result))
        CONSOLE.print(table)
        for precision, t in run_result["targets_by_precision"].items():
            for line in _target_lines(t):
                CONSOLE.print(f"  {precision}: {line}", markup=False)
    CONSOLE.print(f"results in {out}")
    return results


def entrypoint() -> None:
    run_cli(SpeedQuality, run)


if __name__ == "__main__":
    entrypoint()
