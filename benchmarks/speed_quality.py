#!/usr/bin/env python
"""Speed and quality of the product's samplers against stock and training-free alternatives.

For each checkpoint, in one process and one run, every eval image is rendered with:

- ``base``: the stock coarse-to-fine (NeRF, Mip-NeRF) or proposal (nerfacto) pipeline;
- the product (kind ``ours``), every sampler the renderer offers (``--sampler``):
  ``activation`` (the paper's estimate) at every layer x fct, as the paper runs it, with ``--upsample``,
  with the Fig. 3 gate, with the sampling options (half the probe samples; inside the scene box), and at
  every ``--fine-samples`` budget; ``grid`` (the post hoc density grid) at every budget, with and without
  skipping empty rays; ``hybrid`` (activations place the samples, the grid skips empty rays) at every
  layer x fct and budget; ``grid-all`` (nerfacto: the grid of the field's density in place of every
  proposal stage) at every budget, with and without skipping empty rays;
- what a user could do without the product (kind ``alternative``, :mod:`benchmarks.alternatives`): the
  stock pipeline at each smaller final-pass budget and with N/2 and N/4 coarse (first proposal) samples,
  the final pass on uniform weights (``no-coarse``), and, on CUDA, NerfAcc's occupancy grid.

Every method runs at every ``--precision`` (base included), on the same images, with the same
``--rescale`` and near plane. Per method: wall time per image (median of ``--repeats`` whole renders
after a warm-up, synchronised at the ends only: no method is charged a synchronisation another does not
pay), time and multiply-add ratios to base, PSNR / SSIM / LPIPS (computed in float32, outside the
precision scope) and their deltas, and peak memory, measured in a separate untimed render of the first
image (CUDA max allocated, or the growth of the process RSS on CPU). Writes ``results.json``,
``results.md`` and ``pareto.png`` and prints the targets (:mod:`benchmarks.targets`): the fastest
configuration within 0.1 dB of base, of the product and of each estimate, and whether, for every
alternative, the product has one configuration at least as fast with at least its PSNR.

    python -m benchmarks.speed_quality --load-config outputs/demo/spheres/*/run/config.yml
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from rich.console import Console
from rich.progress import Progress

from benchmarks import where_time_goes
from benchmarks.alternatives import coarse_samples, occgrid_not_run, render_uniform, replaced_density_fn
from benchmarks.occgrid import EARLY_STOP_EPS, NerfAccGrid, density_macs, fine_field
from benchmarks.report import markdown, pareto_plot, picture, print_tables
from benchmarks.targets import speed_goals, targets
from nerfinternals import cost, kernels
from nerfinternals.common import (
    atomic_write,
    check_rescale,
    fct_names,
    mean_or_none,
    progress_bar,
    rgb_output,
    run_cli,
    timed,
    write_json,
)
from nerfinternals.estimators import ESTIMATORS, RenderOptions
from nerfinternals.internals import FCT_NAMES, linear_macs, num_probe_layers
from nerfinternals.kernels import Kernels
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.metrics import LPIPS_BACKBONE, image_metrics
from nerfinternals.models.inference import check_fine_samples, check_grid_resolution, check_initial_samples
from nerfinternals.precision import Precision, as_float32, check_precision, precision_scope
from nerfinternals.utils import ALLOCATORS, machine_name, synchronize, use_allocator, warmup_crop
from nerfinternals.views import SELECTION_RULE, SELECTIONS, TRAIN_VIEWS, split_views, worst_view_delta

CONSOLE = Console(width=140)


@dataclass
class SpeedQuality:
    """Benchmark the product's samplers against stock and training-free alternatives."""

    load_config: tuple[Path, ...]
    """config.yml of each run to benchmark (ours or stock vanilla-nerf / mipnerf / nerfacto)."""
    output_dir: Path = Path("benchmarks/results")
    """Folder for results.json, results.md and pareto.png."""
    sampler: tuple[Literal["activation", "grid", "hybrid", "grid-all"], ...] = (
        "activation",
        "grid",
        "hybrid",
        "grid-all",
    )
    """The product's samplers to run (grid-all only on nerfacto: elsewhere it is grid)."""
    fine_samples: tuple[int, ...] = (0,)
    """Final-pass budgets (0: the model's own) for every sampler; each K > 0 is also run as the alternative 'stock kK'."""
    layer: tuple[int, ...] = (0, 1, 2)
    """Probed layers (0-based); layers a model does not have are left out for it."""
    fct: tuple[int, ...] = (0, 1, 2)
    """Transforms: 0 = std, 1 = std_half, 2 = std_half_sq."""
    upsample: bool = True
    """Also run every activation experiment at the model's budget with --upsample."""
    gate: bool = True
    """Also run every activation experiment at the model's budget (as the paper runs it, and with --upsample) with the Fig. 3 activation gate."""
    sampling: bool = True
    """Also run every activation layer x fct at the model's budget with the sampling options: half the probe samples (interpolated along the ray), the uniform samples inside the scene box (bounded scenes), and both."""
    precision: tuple[Precision, ...] = ("fp32",)
    """Run every method (base included) at each of these: fp32, tf32 (CUDA only), bf16, fp16. Ratios and deltas are to base at the first one; ΔPSNR at the same precision is reported too."""
    rescale: float = 1.0
    """Render the eval cameras at this fraction of their resolution (targets area-averaged to match)."""
    keep_near_plane: bool = False
    """Every method (base included) samples from the training near plane at evaluation (nerfstudio resets it to 0)."""
    repeats: int = 3
    """Timed renders per image and method, each repeat in a new shuffled order; the median (with min and max) over repeats is reported."""
    max_images: int | None = None
    """At most N selection views and N report views (default: all; nerfinternals/views.py has the rule)."""
    memory: bool = True
    """Measure every method's peak memory in an untimed render of the first report view."""
    selection: Literal[SELECTIONS] = "eval"
    """Choose on eval images never reported on ("eval": the val split, else every other eval image by name) or on evenly spaced training cameras ("train": every eval image reports)."""
    train_views: int = TRAIN_VIEWS
    """--selection train: how many training cameras to choose on."""
    selection_images: int | None = None
    """At most N selection views (default: as --max-images); fewer save time on slow models."""
    selection_repeats: int | None = None
    """Timed renders per selection view and method (default: --repeats); the picks use their median."""
    device: str | None = None
    """Torch device (default: cuda if available, else cpu)."""
    overwrite: bool = False
    """Replace earlier results in a non-empty output folder."""
    grid_resolution: tuple[int, ...] = (64,)
    """Cells per axis of the density grid: grid and grid-all run at each, hybrid at the first."""
    initial_samples: tuple[int, ...] = (0,)
    """Uniform samples per ray the grid weighs (0: the replaced network's N): grid and grid-all run at each."""
    occgrid_resolution: int = 128
    """Resolution of NerfAcc's occupancy grid alternative (CUDA only; 0: leave it out; 128: NerfAcc's default)."""
    order_seed: int | None = None
    """Seed of the methods' order, shuffled anew for every repeat of every image (default: drawn at random; recorded in results.json)."""
    kernels: Kernels = "fast"
    """Kernels of every method, base included (nerfinternals.kernels: "fast", "compiled", "stock"); unless "stock", stock nerfstudio as shipped is timed too (the row "stock as shipped"), and every row's time_ratio_over_shipped is its time over that row's."""
    allocator: Literal[ALLOCATORS] = "steady"
    """CPU memory for every method alike: "steady" keeps freed memory for reuse, "default" leaves glibc as it starts, which zero-fills large temporaries afresh for every chunk (nerfinternals.utils.keep_freed_memory; recorded in results.json)."""


@dataclass
class Method:
    name: str
    kind: str  # "base" | "ours" | "alternative"
    render: Callable  # (H, W) RayBundle -> outputs dict
    macs_per_ray: Callable[[dict], float]  # outputs -> multiply-adds per ray
    note: str = ""
    config: dict = field(default_factory=dict)  # ours: render_sampled keyword arguments
    predicted: Callable[[dict], float | None] = lambda _: None  # outputs -> the cost model's time ratio


# ---- the product's configurations -----------------------------------------------------------------
def _rendered(outputs: dict) -> float:
    return float(outputs["gate_mask"].float().mean()) if "gate_mask" in outputs else 1.0


def product_configs(model, cfg: SpeedQuality) -> list[tuple[str, dict]]:
    """(name, render_sampled keyword arguments) of every configuration of the product benchmarked."""
    n_layers = num_probe_layers(model.probe_mlp)
    probes = [(layer, FCT_NAMES[f]) for layer in cfg.layer if 0 <= layer < n_layers for f in cfg.fct]
    half = model.num_probe_samples // 2
    boxed = model.probe_box() is not None
    plain = [("", {})] + ([(" ups", {"upsample": True})] if cfg.upsample else [])
    variants = plain + ([(f"{name} gate", {**kw, "gate": True}) for name, kw in plain] if cfg.gate else [])
    if cfg.sampling:
        variants.append((f" n{half}", {"n_probe": half}))
        if boxed:
            variants += [(" box", {"in_box": True}), (f" n{half} box", {"n_probe": half, "in_box": True})]
    base = {
        "upsample": False,
        "gate": False,
        "n_probe": None,
        "in_box": False,
        "fine_samples": 0,
        "skip_empty": False,
        "grid_resolution": cfg.grid_resolution[0],
        "initial_samples": 0,
    }
    configs = []

    def k_name(k: int) -> str:
        return f" k{k}" if k else ""

    if "activation" in cfg.sampler:
        for layer, fct in probes:
            for k in cfg.fine_samples:
                for suffix, options in variants if not k else [("", {})]:
                    name = f"ours l{layer} {fct}{suffix}{k_name(k)}"
                    configs.append(
                        (
                            name,
                            {
                                **base,
                                "sampler": "activation",
                                "layer": layer,
                                "fct": fct,
                                "fine_samples": k,
                                **options,
                            },
                        )
                    )
    if "hybrid" in cfg.sampler:
        for layer, fct in probes:
            for k in cfg.fine_samples:
                name = f"hybrid l{layer} {fct}{k_name(k)} skip"
                configs.append(
                    (
                        name,
                        {
                            **base,
                            "sampler": "hybrid",
                            "layer": layer,
                            "fct": fct,
                            "fine_samples": k,
                            "skip_empty": True,
                        },
                    )
                )
    grids = ["grid"] if "grid" in cfg.sampler else []
    if "grid-all" in cfg.sampler and model.later_proposal_counts(0):  # elsewhere grid-all is grid
        grids.append("grid-all")
    for sampler in grids:
        grid_options = itertools.product(
            cfg.grid_resolution, cfg.initial_samples, cfg.fine_samples, (False, True)
        )
        for resolution, n, k, skip in grid_options:
            name = f"{sampler} {resolution}^3{f' n{n}' if n else ''}{k_name(k)}" + (" skip" if skip else "")
            options = {
                "sampler": sampler,
                "layer": 0,
                "fct": FCT_NAMES[0],
                "fine_samples": k,
                "skip_empty": skip,
                "grid_resolution": resolution,
                "initial_samples": n,
            }
            configs.append((name, {**base, **options}))
    return configs


NOISE = "base again"
"""The stock render run a second time as another method: its time against base's is the noise floor."""
SHIPPED = "stock as shipped"
"""The stock render through nerfstudio's own kernels (``--kernels`` other than stock): the speed-up a user
gets by installing the plugin is over this row; base runs the same kernels as the product."""


def methods_for(model, cfg: SpeedQuality) -> tuple[list[Method], dict, dict]:
    """Every method benchmarked on ``model`` (base first, then :data:`NOISE`), why any alternative was not run,
    and the fills: ``{"grid": grid resolutions to fill, "methods": names that need the grid, "fixed": {name:
    seconds} of fills measured once (NerfAcc's)}``."""
    base_macs = lambda _: model.macs_per_ray(None)  # noqa: E731
    constants = cost.load_constants()
    stock_seconds = cost.seconds(cost.render_operations(model, cost.stock_kwargs()), constants)

    def predicted_stock(fine_samples: int = 0) -> float:
        kwargs = {**cost.stock_kwargs(), "fine_samples": fine_samples}
        return cost.seconds(cost.render_operations(model, kwargs), constants) / stock_seconds

    def shipped(bundle):
        with kernels.kernel_scope("stock"):
            return model.render_stock(bundle)

    methods = [
        Method("base", "base", model.render_stock, base_macs, predicted=lambda _: 1.0),
        Method(NOISE, "noise", model.render_stock, base_macs, predicted=lambda _: 1.0),
    ]
    if cfg.kernels != "stock":
        note = "stock nerfstudio through its own kernels; base and the rest run --kernels " + cfg.kernels
        methods.append(Method(SHIPPED, "shipped", shipped, base_macs, note=note))
    fills: dict = {"grid": set(), "methods": {}, "fixed": {}}
    for name, kwargs in product_configs(model, cfg):

        def render(bundle, kwargs=kwargs):
            return model.render_sampled(bundle, **kwargs, stage_times=False)[0]

        def macs(outputs, kwargs=kwargs):
            return model.render_macs_per_ray(kwargs, _rendered(outputs))

        def predicted(outputs, kwargs=kwargs):
            return cost.predicted_time_ratio(model, kwargs, _rendered(outputs), constants)

        key = grid_key(model, kwargs)
        if key is not None:
            fills["grid"].add(key)
            fills["methods"][name] = key
        methods.append(Method(name, "ours", render, macs, config=kwargs, predicted=predicted))
    n = model.num_probe_samples
    for k in [k for k in cfg.fine_samples if k]:

        def render(bundle, k=k):
            return model.render_sampled(bundle, "stock", fine_samples=k, stage_times=False)[0]

        methods.append(
            Method(
                f"stock k{k}",
                "alternative",
                render,
                lambda _, k=k: model.macs_per_ray(None, fine_samples=k),
                predicted=lambda _, k=k: predicted_stock(k),
            )
        )
    for div in (2, 4):
        k = max(1, n // div)

        def render(bundle, k=k):
            with coarse_samples(model, k):
                return model.render_stock(bundle)

        def macs(_, k=k):
            with coarse_samples(model, k):
                return model.macs_per_ray(None)

        def predicted_coarse(_, k=k):
            with coarse_samples(model, k):
                return predicted_stock()

        methods.append(
            Method(f"coarse N/{div} ({k})", "alternative", render, macs, predicted=predicted_coarse)
        )
    methods.append(
        Method(
            "no-coarse (uniform)",
            "alternative",
            lambda bundle: render_uniform(model, bundle),
            lambda _: model.fine_macs_per_ray(0),
        )
    )
    not_run = {}
    why = occgrid_not_run(model) if cfg.occgrid_resolution > 0 else None
    if why:
        not_run["NerfAcc occupancy grid"] = why
    elif cfg.occgrid_resolution > 0:
        occ_name = f"NerfAcc occupancy grid {cfg.occgrid_resolution}^3"
        try:
            start = time.perf_counter()
            occ = NerfAccGrid(model, replaced_density_fn(model), cfg.occgrid_resolution)
            setup_s = time.perf_counter() - start
        except Exception as err:  # a broken extension: record it, keep the rest of the run going
            not_run["NerfAcc occupancy grid"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        else:
            per_sample, per_density = linear_macs(fine_field(model)), density_macs(fine_field(model))
            fills["fixed"][occ_name] = setup_s
            methods.append(
                Method(
                    occ_name,
                    "alternative",
                    occ.render,
                    lambda outputs: (
                        float(outputs["samples"].float().mean()) * per_sample
                        + float(outputs["marched"].float().mean()) * per_density
                    ),
                    note=(
                        f"nerfacc.OccGridEstimator filled once in {setup_s:.2f} s from the replaced network's density "
                        f"({100 * occ.occupied_fraction:.1f} % of cells occupied); marching step {occ.step:.4f} "
                        f"(the stock fine pass's mean spacing), early ray termination at transmittance {EARLY_STOP_EPS:g} "
                        "(NerfAcc's default) by the fine network's density, which then renders the kept samples; "
                        "CUDA only"
                    ),
                )
            )
    return methods, not_run, fills


# ---- measuring --------------------------------------------------------------------------------------
class PeakMemory:
    """Peak memory of a block: CUDA max allocated, or the growth of the process RSS (sampled by a thread) on
    CPU. Used around an untimed render only: the sampling thread would slow a timed one."""

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


def _timed_render(m: Method, bundle, precision: str, device) -> tuple[dict, float]:
    def run():
        with precision_scope(precision, device):
            return m.render(bundle)

    return timed(device, run)


def grid_key(model, config: dict) -> tuple[int, str] | None:
    """(resolution, source) of the density grid a configuration of the product needs (its fill counted once
    per model; see the models' ``density_grid``), None: no grid."""
    options = RenderOptions(**config)
    source = ESTIMATORS[options.sampler].grid_source(model, options)
    return None if source is None else (options.grid_resolution, source)


def fill_label(key: tuple[int, str]) -> str:
    """results.json's name of a grid: its resolution, and "-field" for a grid of the field's density."""
    resolution, source = key
    return str(resolution) + ("" if source == "replaced" else f"-{source}")


def grid_fill_seconds(model, key: tuple[int, str], repeats: int) -> list[float]:
    """Wall times of ``repeats`` fills of the model's density grid ``key`` (resolution, source), each from an
    emptied cache (the model keeps its grid once filled: ``density_grid``); the last fill stays in the cache."""
    times = []
    for _ in range(repeats):
        cached = model.__dict__.get("_density_grids", {})
        old = cached.pop(key, None)
        start = time.perf_counter()
        grid = model.density_grid(*key)
        synchronize(model.device)
        times.append(time.perf_counter() - start)
        if old is not None and grid is old[1]:
            raise RuntimeError("the density grid was not refilled: the model's grid cache has moved")
    return times


def spread(values: list[float]) -> dict:
    """``{"median", "min", "max"}`` of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure_side(
    model,
    methods: list[Method],
    views,
    cfg: SpeedQuality,
    rng: random.Random,
    progress,
    task,
    memory: bool,
    repeats: int,
) -> dict:
    """Render every method on ``views`` (:class:`nerfinternals.views.Side` views) at every precision.

    Each repeat renders every method once, in an order shuffled by ``rng``. Returns ``{(method, precision):
    {"times": [per repeat: mean time per image], "images": [per image: metrics, MACs], "peak_mem_mb"}}``.
    """
    device = model.device
    out = {(m.name, p): {"times": [0.0] * repeats, "images": []} for p in cfg.precision for m in methods}
    for i, (_, bundle, target) in enumerate(views):
        for precision in cfg.precision:
            last: dict[str, dict] = {}
            for r in range(repeats):
                for m in rng.sample(methods, len(methods)):
                    outputs, t = _timed_render(m, bundle, precision, device)
                    out[(m.name, precision)]["times"][r] += t
                    last[m.name] = outputs
            for m in methods:
                entry = out[(m.name, precision)]
                outputs = as_float32(last[m.name])
                rgb = rgb_output(outputs).float().to(device)
                image = {"macs_per_ray": m.macs_per_ray(outputs), **image_metrics(rgb, target, model.lpips)}
                image["predicted_time_ratio"] = m.predicted(outputs) if precision == "fp32" else None
                if "gate_mask" in outputs:
                    image["rendered_fraction"] = _rendered(outputs)
                entry["images"].append(image)
                if memory and i == 0:  # memory: a separate, untimed render of the first image
                    with PeakMemory(device) as mem, precision_scope(precision, device):
                        m.render(bundle)
                    entry["peak_mem_mb"] = mem.peak_mb
                progress.advance(task)
    for entry in out.values():
        entry["times"] = [t / max(1, len(entry["images"])) for t in entry["times"]]
    return out


def summarise(
    measured: dict, methods: list[Method], cfg: SpeedQuality, base_macs: float, fills: dict
) -> dict:
    """Rows of results.json (``{name: row}``) from one side's measurements; ratios and deltas to base."""
    reference = cfg.precision[0]

    def mean_of(name: str, precision: str, key: str) -> float | None:
        if key == "t":
            return statistics.median(measured[(name, precision)]["times"])
        return mean_or_none([e[key] for e in measured[(name, precision)]["images"]])

    rows = {}
    for precision in cfg.precision:
        for m in methods:
            entry = measured[(m.name, precision)]
            row = {"kind": m.kind, "precision": precision, **({"note": m.note} if m.note else {})}
            if m.config:
                row["config"] = m.config
            times = spread(entry["times"])
            row.update(t=times["median"], t_min=times["min"], t_max=times["max"], t_repeats=entry["times"])
            for key in ("psnr", "ssim", "lpips", "macs_per_ray", "rendered_fraction", "predicted_time_ratio"):
                values = [e.get(key) for e in entry["images"]]
                row[key] = None if any(v is None for v in values) else mean_or_none(values)
            row["peak_mem_mb"] = entry.get("peak_mem_mb")
            row["macs_ratio"] = row["macs_per_ray"] / base_macs
            for tag, base_precision in (("", reference), ("_same_precision", precision)):
                row[f"time_ratio{tag}"] = row["t"] / mean_of("base", base_precision, "t")
                row[f"psnr_delta{tag}"] = row["psnr"] - mean_of("base", base_precision, "psnr")
                row[f"psnr_delta_worst_view{tag}"] = worst_view_delta(
                    [e["psnr"] for e in entry["images"]],
                    [e["psnr"] for e in measured[("base", base_precision)]["images"]],
                )
                row[f"ssim_delta{tag}"] = row["ssim"] - mean_of("base", base_precision, "ssim")
            if (SHIPPED, reference) in measured:
                row["time_ratio_over_shipped"] = row["t"] / mean_of(SHIPPED, reference, "t")
            row.update(fill_figures(fills.get(m.name), row["t"], mean_of("base", reference, "t")))
            rows[m.name + _suffix(precision, cfg)] = row
    return rows


def fill_figures(fill: float | None, t: float, base_t: float) -> dict:
    """Speed-up per image without the fill (many images from one load), with it for one image, and after how
    many images the fill has paid for itself (None: never, the method is not faster than base)."""
    figures = {"fill_seconds": fill, "speedup": base_t / t}
    if fill is None:
        return figures
    figures["speedup_one_image"] = base_t / (t + fill)
    figures["fill_pays_after_images"] = math.ceil(fill / (base_t - t)) if t < base_t else None
    return figures


def noise_floor(measured: dict, precision: str) -> float:
    """The stock-vs-stock noise floor: the largest relative difference, over repeats, between the time of
    base and of the same stock render run again as another method (:data:`NOISE`)."""
    base, again = measured[("base", precision)]["times"], measured[(NOISE, precision)]["times"]
    return max(abs(b2 / b1 - 1.0) for b1, b2 in zip(base, again, strict=True))


def run_label(config_path: Path, method: str) -> str:
    """A file name for a run: ``<scene>-<method>`` of an ``<root>/<scene>/<method>/<timestamp>/config.yml``."""
    scene = config_path.resolve().parent.parent.parent.name
    return f"{scene}-{method}" if scene else method


def look_closer(model, methods: list[Method], bundle, target, picks: list[str], cfg) -> dict:
    """Where the time goes (:mod:`benchmarks.where_time_goes`) for base and each pick (row names of
    results.json) on one report view, with the images each rendered."""
    by_name = {m.name: m for m in methods}
    wanted = {("base", cfg.precision[0])}
    for name in picks:
        method, _, precision = name.partition(" @")
        wanted.add((method, precision or cfg.precision[0]))
    parts, images = {}, {}
    for name, precision in sorted(wanted):
        m = by_name[name]

        def render(m=m, precision=precision):
            with precision_scope(precision, model.device):
                return m.render(bundle)

        figures, outputs = where_time_goes.profile(model, render, cfg.repeats)
        label = name + _suffix(precision, cfg)
        parts[label] = figures
        images[label] = rgb_output(as_float32(outputs)).float().clamp(0, 1).cpu().numpy()
    return {"parts": parts, "images": images, "target": target.float().cpu().numpy()}


def benchmark_run(config_path: Path, cfg: SpeedQuality, progress: Progress) -> dict:
    """Benchmark every method on one run; returns its section of results.json."""
    with kernels.kernel_scope(cfg.kernels):
        return _benchmark_run(config_path, cfg, progress)


def _benchmark_run(config_path: Path, cfg: SpeedQuality, progress: Progress) -> dict:
    config, pipeline, ckpt, step = load_pipeline(config_path, device=cfg.device)
    model = pipeline.model
    device = model.device
    try:
        for precision in cfg.precision:
            check_precision(precision, device)
        model.set_inference(keep_near_plane=cfg.keep_near_plane)
    except ValueError as err:
        raise InputError(str(err)) from None
    compile_seconds = kernels.compile_model(model, device, cfg.kernels)
    split = split_views(pipeline.datamanager, cfg.max_images, cfg.selection, cfg.train_views)
    if cfg.selection_images is not None:
        keep = slice(0, cfg.selection_images)
        selection = split.selection
        split.selection = dataclasses.replace(
            selection, indices=selection.indices[keep], names=selection.names[keep]
        )
    repeats = {"selection": cfg.selection_repeats or cfg.repeats, "report": cfg.repeats}
    sides = {"selection": split.selection, "report": split.report}
    for side_name, side in sides.items():
        if not side.indices:
            raise InputError(f"no {side_name} views for {config_path} ({split.rule})")
    methods, not_run, fills = methods_for(model, cfg)
    num = {k: len(side.indices) for k, side in sides.items()}
    task = progress.add_task(
        f"{config.method_name}", total=(num["selection"] + num["report"]) * len(methods) * len(cfg.precision)
    )
    order_seed = cfg.order_seed if cfg.order_seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(order_seed)
    with torch.inference_mode():
        first = next(iter(split.report.views(model, cfg.rescale)))[1]
        image_shape = list(first.shape)
        crop = warmup_crop(first)
        for precision in cfg.precision:  # warm-up: every path once on a small crop
            with precision_scope(precision, device):
                for m in methods:
                    m.render(crop)
        fill_times = {key: spread(grid_fill_seconds(model, key, cfg.repeats)) for key in fills["grid"]}
        measured = {
            name: measure_side(
                model,
                methods,
                side.views(model, cfg.rescale),
                cfg,
                rng,
                progress,
                task,
                name == "report" and cfg.memory,
                repeats[name],
            )
            for name, side in sides.items()
        }
    base_macs = model.macs_per_ray(None)
    fill_by_method = {name: fill_times[key]["median"] for name, key in fills["methods"].items()}
    fill_by_method.update(fills["fixed"])
    rows = {k: summarise(v, methods, cfg, base_macs, fill_by_method) for k, v in measured.items()}
    floors = {p: noise_floor(measured["report"], p) for p in cfg.precision}
    for row in rows["report"].values():
        row["within_noise"] = abs(row["time_ratio"] - 1.0) <= floors[cfg.precision[0]]

    def at(precision: str, side: str) -> dict:
        return {
            n: {
                **r,
                "time_ratio": r["time_ratio_same_precision"],
                "psnr_delta": r["psnr_delta_same_precision"],
                "psnr_delta_worst_view": r["psnr_delta_worst_view_same_precision"],
            }
            for n, r in rows[side].items()
            if r["precision"] == precision
        }

    by_precision = {p: targets(at(p, "report"), at(p, "selection")) for p in cfg.precision}
    # against stock at the first precision: what the best precision buys on top
    overall = targets(rows["report"], rows["selection"])
    fastest = overall["speed"]["product"]
    fastest_name = fastest["name"] if fastest else None
    picks = [t["speed"]["product"]["name"] for t in by_precision.values() if t["speed"]["product"]]
    _, bundle, target = next(iter(split.report.views(model, cfg.rescale)))
    with torch.inference_mode():
        closer = look_closer(
            model, methods, bundle, target, picks + ([fastest_name] if fastest_name else []), cfg
        )
    report_rows = rows["report"]
    return {
        "config": str(config_path),
        "method": config.method_name,
        "model": type(model).__name__,
        "checkpoint": str(ckpt),
        "step": step,
        "device": str(device),
        **split.record(),
        "num_images": num["report"],
        "num_selection_images": num["selection"],
        "selection_rule": SELECTION_RULE,
        "image_shape": image_shape,
        "rescale": cfg.rescale,
        "keep_near_plane": cfg.keep_near_plane,
        "kernels": cfg.kernels,
        "compile_seconds": compile_seconds,
        "precisions": list(cfg.precision),
        "repeats": cfg.repeats,
        "selection_repeats": repeats["selection"],
        "order_seed": order_seed,
        "noise_floor": floors,
        "grid_fill_seconds": {fill_label(key): f for key, f in sorted(fill_times.items())},
        "num_probe_samples": model.num_probe_samples,
        "lpips_backbone": LPIPS_BACKBONE,
        "methods": rows["report"],
        "selection_methods": {
            n: {
                k: r[k]
                for k in (
                    "t",
                    "psnr",
                    "time_ratio",
                    "psnr_delta",
                    "time_ratio_same_precision",
                    "psnr_delta_same_precision",
                    "psnr_delta_worst_view",
                    "psnr_delta_worst_view_same_precision",
                )
            }
            for n, r in rows["selection"].items()
        },  # fmt: skip
        "not_run": not_run,
        "targets": overall,
        "targets_by_precision": by_precision,
        "goals": speed_goals(by_precision, overall, stock_nerfacto=config.method_name == "nerfacto"),
        "where_time_goes": {
            "view": split.report.names[0],
            "parts": closer["parts"],
        },
        "label": run_label(config_path, config.method_name),
        # the picture's images (not in results.json): base and the fastest within the budget, any precision
        "_picture": {
            "target": closer["target"],
            "base": closer["images"]["base" + _suffix(cfg.precision[0], cfg)],
            "fastest": fastest_name,
            "fastest_image": closer["images"].get(fastest_name) if fastest_name else None,
            "base_psnr": report_rows["base" + _suffix(cfg.precision[0], cfg)]["psnr"],
            "fastest_row": report_rows.get(fastest_name) if fastest_name else None,
        },
    }


def run(cfg: SpeedQuality) -> dict:
    """Benchmark every run of ``cfg``; writes results.json, results.md and pareto.png."""
    if not cfg.load_config:
        raise InputError("--load-config needs at least one config.yml")
    if cfg.repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {cfg.repeats}")
    for flag, value in (
        ("--selection-images", cfg.selection_images),
        ("--selection-repeats", cfg.selection_repeats),
    ):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be at least 1, got {value}")
    if cfg.max_images is not None and cfg.max_images < 1:
        raise InputError(f"--max-images must be at least 1, got {cfg.max_images}")
    fct_names(cfg.fct)
    check_rescale(cfg.rescale)
    if not cfg.precision:
        raise InputError("--precision needs at least one precision")
    if not cfg.fine_samples:
        raise InputError("--fine-samples needs at least one budget (0: the model's own)")
    try:
        for k in cfg.fine_samples:
            check_fine_samples(k)
        if not cfg.grid_resolution or not cfg.initial_samples:
            raise ValueError("--grid-resolution and --initial-samples need at least one value each")
        for resolution in cfg.grid_resolution:
            check_grid_resolution(resolution)
        for n in cfg.initial_samples:
            check_initial_samples(n)
    except ValueError as err:
        raise InputError(str(err)) from None
    out = Path(cfg.output_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not cfg.overwrite)):
        raise InputError(f"output folder {out} is not empty: pass --overwrite or choose another --output-dir")
    missing = [p for p in cfg.load_config if not Path(p).is_file()]
    if missing:
        raise InputError(f"config not found: {missing[0]}")
    allocator = use_allocator(cfg.allocator)
    results: dict = {"machine": machine_name(cfg.device), "allocator": allocator, "runs": []}
    progress = progress_bar(CONSOLE)
    pictures = {}
    with progress:
        for path in cfg.load_config:
            run_result = benchmark_run(Path(path), cfg, progress)
            label = run_result["label"]
            while label in pictures:  # two runs of one scene and method
                label += "+"
            run_result["label"] = label
            run_result["picture"] = f"{label}.png"
            pictures[label] = run_result.pop("_picture")
            results["runs"].append(run_result)
    out.mkdir(parents=True, exist_ok=True)
    for label, images in pictures.items():
        picture(images, out / f"{label}.png")
    write_json(out / "results.json", results)
    atomic_write(out / "results.md", lambda p: p.write_text(markdown(results)))
    pareto_plot(results, out / "pareto.png")
    print_tables(results, CONSOLE)
    CONSOLE.print(f"results in {out}")
    return results


def entrypoint() -> None:
    run_cli(SpeedQuality, run)


if __name__ == "__main__":
    entrypoint()
