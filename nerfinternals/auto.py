"""``--auto``: the fastest configuration of the product within a PSNR budget, chosen on a run's selection views.

Every candidate configuration (:func:`candidates`: samplers x final-pass budgets x the probe and skipping
options) and the stock sampler render the run's selection views (:mod:`nerfinternals.views`: the val split
where the data has one of its own (its own cameras, not the test split's), else every other eval image by
name, or with ``selection="train"`` evenly spaced training cameras; never an image the choice is reported
on) in one process, at the precision, resolution and near plane asked for; the fastest candidate (total
synchronised wall time, after a warm-up) whose PSNR is at least stock's minus the budget on *every*
selection view (:data:`nerfinternals.views.SELECTION_RULE`) is chosen. If none is, the choice is the stock
sampler. The choice, every candidate's figures and why are written to
``<run dir>/nerfinternals_auto.json`` with the selection and report views by name, which later
``--auto`` calls (``eval.py``, ``ns-internals-render``) reuse only while every one of its :func:`conditions`
holds: the same machine and device, rescale, precision, kernels, budget, near plane, selection views and rules
(:data:`nerfinternals.views.RULE`, :data:`~nerfinternals.views.SELECTION_RULE`), and the same config and
checkpoint contents.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from nerfinternals import estimators
from nerfinternals.common import mean_or_none, rgb_output, timed, write_json
from nerfinternals.estimators import RenderOptions
from nerfinternals.internals import FCT_NAMES, num_probe_layers
from nerfinternals.kernels import compile_model, kernel_scope
from nerfinternals.loading import InputError, checkpoint_path, load_pipeline, read_config
from nerfinternals.metrics import image_metrics
from nerfinternals.models.inference import INFERENCE_DEFAULTS, MAX_GRID_RESOLUTION, render_kwargs
from nerfinternals.precision import precision_scope
from nerfinternals.utils import allocator_in_effect, machine_name, warmup_crop
from nerfinternals.views import RULE as VIEWS_RULE
from nerfinternals.views import SELECTION_RULE, TRAIN_VIEWS, split_views, worst_view_delta

AUTO_FILE = "nerfinternals_auto.json"

CHOICE_FIELDS = (
    "inference_sampler",
    "probe_layer",
    "probe_fct",
    "probe_upsample",
    "probe_gate",
    "probe_samples",
    "probe_in_box",
    "fine_samples",
    "skip_empty",
    "initial_samples",
    "grid_resolution",
)
"""The inference-setting fields a choice sets (precision and the near plane are conditions of it; the empty
threshold is the run's)."""


def fine_budgets(model) -> list[int]:
    """Final-pass budgets ``--auto`` tries: the model's own (0), and 3/4, 1/2 and 1/4 of its importance
    (nerfacto: field) samples; NeRF also all of them without the uniform originals."""
    c = model.config
    count = getattr(c, "num_importance_samples", None) or c.num_nerf_samples_per_ray
    budgets = [0] + ([count] if hasattr(model, "field_coarse") else [])
    budgets += [count * 3 // 4, count // 2, count // 4]
    return list(dict.fromkeys(k for k in budgets if k == 0 or k >= 2))


def candidates(model, grid_resolution: int = 64) -> list[dict]:
    """The configurations ``--auto`` tries (each a value of every :data:`CHOICE_FIELDS` field):

    - activation at the model's own budget: layers 0..2 x the three transforms, each as the paper runs it
      and with the sampling options (half the probe samples; inside the scene box where the model has
      one; pixel upsampling);
    - activation at each smaller budget, and hybrid (activation samples, the grid's empty rays skipped)
      at every budget: layers 0..2 x the three transforms;
    - the density grid at every budget, with and without skipping empty rays, in the box and not, at the
      run's grid resolution R, on the replaced network's N uniform samples and (without the box) on N/4;
    - on nerfacto, the grid in place of every proposal stage (grid-all) at every budget, with and without
      skipping empty rays, on N and N/4 samples, at R and 2R (its grid holds the field's sharp density);
    - the stock sampler at every smaller budget, and with skipping at every budget.
    """
    layers = range(min(3, num_probe_layers(model.probe_mlp)))
    half = model.num_probe_samples // 2
    boxed = model.probe_box() is not None
    budgets = fine_budgets(model)
    plain = {
        "probe_layer": model.config.probe_layer,
        "probe_fct": model.config.probe_fct,
        "probe_upsample": False,
        "probe_gate": False,
        "probe_samples": 0,
        "probe_in_box": False,
        "fine_samples": 0,
        "skip_empty": False,
        "initial_samples": 0,
        "grid_resolution": grid_resolution,
    }
    quarter = model.num_probe_samples // 4
    variants = [
        {},
        {"probe_samples": half},
        {"probe_upsample": True},
        *([{"probe_in_box": True}, {"probe_in_box": True, "probe_samples": half}] if boxed else []),
    ]
    probes = [{"probe_layer": layer, "probe_fct": fct} for layer in layers for fct in FCT_NAMES]
    options = [{"inference_sampler": "activation", **p, **v} for p in probes for v in variants]
    options += [
        {"inference_sampler": "activation", **p, "fine_samples": k} for k in budgets[1:] for p in probes
    ]
    options += [
        {"inference_sampler": "hybrid", **p, "fine_samples": k, "skip_empty": True}
        for k in budgets
        for p in probes
    ]
    options += [
        {"inference_sampler": "grid", "fine_samples": k, "skip_empty": skip, "probe_in_box": box}
        for k in budgets
        for skip in (False, True)
        for box in ((False, True) if boxed else (False,))
    ]
    if quarter >= 2:
        options += [
            {"inference_sampler": "grid", "fine_samples": k, "skip_empty": skip, "initial_samples": quarter}
            for k in budgets
            for skip in (False, True)
        ]
    if model.later_proposal_counts(0):  # elsewhere grid-all is grid
        resolutions = dict.fromkeys(
            min(r, MAX_GRID_RESOLUTION) for r in (grid_resolution, 2 * grid_resolution)
        )
        options += [
            {
                "inference_sampler": "grid-all",
                "fine_samples": k,
                "skip_empty": skip,
                "initial_samples": n,
                "grid_resolution": r,
            }
            for r in resolutions
            for n in dict.fromkeys((0, quarter if quarter >= 2 else 0))
            for k in budgets
            for skip in (False, True)
        ]
    options += [
        {"inference_sampler": "stock", "fine_samples": k, "skip_empty": skip}
        for k in budgets
        for skip in (False, True)
        if k or skip
    ]
    return [{**plain, **option} for option in options]


def label(settings: dict) -> str:
    """A short name of a configuration (an inference setting), e.g. ``l1 std_half n32 box``,
    ``grid 64^3 k64 skip`` (:func:`nerfinternals.estimators.label`)."""
    return estimators.label(RenderOptions(**render_kwargs({**INFERENCE_DEFAULTS, **settings})))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MEASURED_AT = {
    "precision": "fp32",
    "rescale": 1.0,
    "keep_near_plane": False,
    "selection": "eval",
    "train_views": TRAIN_VIEWS,
    "kernels": "fast",
}
"""How the candidates are rendered when not asked otherwise (conditions of a choice, with the device)."""


def conditions(config_path: Path, max_psnr_drop: float, device: str | None = None, **measured_at) -> dict:
    """What a choice depends on (``measured_at``: :data:`MEASURED_AT`'s keys): it is reused only while all of
    these are equal."""
    resolved = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return {
        "machine": machine_name(resolved),
        "device": resolved.type,
        "allocator": allocator_in_effect(resolved),
        "views_rule": VIEWS_RULE,
        "selection_rule": SELECTION_RULE,
        **MEASURED_AT,
        **measured_at,
        "max_psnr_drop": max_psnr_drop,
        "config_sha256": _sha256(Path(config_path)),
        "checkpoint_sha256": _sha256(checkpoint_path(config_path, read_config(config_path))),
    }


def choose(
    config_path: Path,
    max_psnr_drop: float,
    device: str | None = None,
    precision: str = "fp32",
    rescale: float = 1.0,
    keep_near_plane: bool = False,
    max_images: int | None = None,
    selection: str = "eval",
    train_views: int = TRAIN_VIEWS,
    kernels: str = "fast",
    console: Console | None = None,
) -> dict:
    """Measure every candidate on the run's selection views (``selection``: :func:`split_views`'), choose the
    fastest within ``max_psnr_drop`` of stock on every selection view, record and return the record."""
    console = console or Console()
    config, pipeline, ckpt, step = load_pipeline(config_path, device=device)
    model = pipeline.model
    model.set_inference(keep_near_plane=keep_near_plane)
    try:
        split = split_views(pipeline.datamanager, max_images, selection, train_views)
    except InputError as err:
        raise InputError(f"--auto: {err}") from None
    views = list(split.selection.views(model, rescale))
    if not views:
        raise InputError(
            f"--auto needs selection views: the run's data has none ({config.pipeline.datamanager.data})"
        )
    current = model.inference_settings()
    options = candidates(model, current["grid_resolution"])
    console.print(
        f"--auto: {len(options)} configurations and stock on {len(views)} selection view(s) "
        f"({split.rule}) of {views[0][1].shape[1]}x{views[0][1].shape[0]} px ({precision}, {model.device})"
    )

    if (seconds := compile_model(model, model.device, kernels)) is not None:
        console.print(f"--auto: compiled in {seconds:.1f} s")

    def measure(render) -> dict:
        """Total wall time, mean and per-view PSNR of ``render`` on the selection views (precision scope)."""
        times, psnrs = [], []
        for _, bundle, target in views:
            with precision_scope(precision, model.device):
                outputs, t = timed(model.device, lambda bundle=bundle: render(bundle))
            times.append(t)
            psnrs.append(image_metrics(rgb_output(outputs).float(), target, None)["psnr"])
        return {"t": sum(times), "psnr": mean_or_none(psnrs), "psnrs": psnrs}

    start = time.perf_counter()
    with torch.inference_mode(), kernel_scope(kernels):
        crop = warmup_crop(views[0][1])
        with precision_scope(precision, model.device):
            model.render_stock(crop)  # warm-up: one-time costs stay out of the timings
        base = measure(model.render_stock)
        rows = []
        for settings in options:
            full = {**current, **settings}
            with precision_scope(precision, model.device):
                model.render_setting(crop, full)  # warm-up (fills the density grid once)
            row = measure(lambda b, full=full: model.render_setting(b, full))
            row.update(
                settings=settings,
                time_ratio=row["t"] / base["t"],
                psnr_delta=row["psnr"] - base["psnr"],
                psnr_delta_worst_view=worst_view_delta(row["psnrs"], base["psnrs"]),
            )
            row["within_budget"] = row["psnr_delta_worst_view"] >= -max_psnr_drop
            rows.append(row)
    within = [r for r in rows if r["within_budget"]]
    stock = {
        **{k: current[k] for k in CHOICE_FIELDS},
        "inference_sampler": "stock",
        "fine_samples": 0,
        "skip_empty": False,
    }
    if within:
        best = min(within, key=lambda r: r["t"])
        chosen = best["settings"]
        reason = (
            f"{label(chosen)} is the fastest of the {len(within)} of {len(rows)} configurations whose PSNR is "
            f"within {max_psnr_drop} dB of stock's on each of {len(views)} selection view(s) (stock "
            f"{base['psnr']:.2f} dB): {best['psnr']:.2f} dB ({best['psnr_delta']:+.2f}, worst view "
            f"{best['psnr_delta_worst_view']:+.2f}) at {best['time_ratio']:.3f} of stock's time"
        )
    else:
        chosen = stock
        closest = max(rows, key=lambda r: r["psnr_delta_worst_view"])
        reason = (
            f"no configuration is within {max_psnr_drop} dB of stock on each of {len(views)} selection view(s) "
            f"(closest: {label(closest['settings'])}, worst view {closest['psnr_delta_worst_view']:+.2f} dB): "
            "stock sampler"
        )
    record = {
        "chosen": chosen,
        "reason": reason,
        "conditions": conditions(
            config_path,
            max_psnr_drop,
            str(model.device),
            precision=precision,
            rescale=rescale,
            keep_near_plane=keep_near_plane,
            selection=selection,
            train_views=train_views,
            kernels=kernels,
        ),
        "max_psnr_drop": max_psnr_drop,
        "checkpoint": ckpt.name,
        "step": step,
        "method": config.method_name,
        "device": str(model.device),
        "grid": {"resolution": current["grid_resolution"], "empty_threshold": current["empty_threshold"]},
        **split.record(),
        "selection_images": len(views),
        "image_shape": list(views[0][1].shape),
        "base": base,
        "candidates": rows,
        "seconds": time.perf_counter() - start,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    _print(record, console)
    path = Path(config_path).parent / AUTO_FILE
    try:
        write_json(path, record)
        console.print(f"--auto: recorded in {path}")
    except OSError as err:
        console.print(f"--auto: not recorded ({err.strerror}: {path}); the choice holds for this run only")
    return record


def _print(record: dict, console: Console) -> None:
    table = Table(
        title=f"--auto on selection views (stock: {record['base']['psnr']:.2f} dB, {record['base']['t']:.2f} s)"
    )
    columns = ("configuration", "t ratio", "ΔPSNR", "worst view", f"within {record['max_psnr_drop']} dB")
    for col in columns:
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for row in sorted(record["candidates"], key=lambda r: r["t"]):
        table.add_row(
            label(row["settings"]),
            f"{row['time_ratio']:.3f}",
            f"{row['psnr_delta']:+.2f}",
            f"{row['psnr_delta_worst_view']:+.2f}",
            "yes" if row["within_budget"] else "no",
        )
    console.print(table)
    console.print(f"--auto chose {label(record['chosen'])}: {record['reason']}")


def auto_settings(
    config_path: Path, max_psnr_drop: float, console: Console | None = None, **conditions_
) -> dict:
    """The chosen inference setting (the :data:`CHOICE_FIELDS`) of :func:`auto_record`."""
    return auto_record(config_path, max_psnr_drop, console, **conditions_)["chosen"]


def auto_record(
    config_path: Path, max_psnr_drop: float, console: Console | None = None, **conditions_
) -> dict:
    """The record of the choice (``chosen``: the :data:`CHOICE_FIELDS`; ``selection_views``, ...): the recorded
    one when the record's :func:`conditions` equal this call's (machine and device, rescale, precision, budget,
    near plane, the config's and the checkpoint's contents), else chosen now by :func:`choose`
    (``conditions_``: its ``device``, ``precision``, ``rescale``, ``keep_near_plane``, ``max_images``)."""
    console = console or Console()
    if max_psnr_drop < 0:
        raise InputError(f"--max-psnr-drop must be at least 0, got {max_psnr_drop}")
    path = Path(config_path).parent / AUTO_FILE
    if path.is_file():
        wanted = conditions(
            config_path, max_psnr_drop, **{k: v for k, v in conditions_.items() if k != "max_images"}
        )
        try:
            record = json.loads(path.read_text())
            recorded = record["conditions"]
            fits = (
                recorded == wanted
                and set(record["chosen"]) == set(CHOICE_FIELDS)
                and isinstance(record["selection_views"], list)
            )
        except (ValueError, KeyError, TypeError):
            fits, recorded = False, {}
        if fits:
            console.print(
                f"--auto: using the choice recorded in {path} ({len(record['selection_views'])} selection view(s) of "
                f"{record['image_shape'][1]}x{record['image_shape'][0]} px on {record['device']}): {label(record['chosen'])}"
            )
            return record
        changed = (
            sorted(k for k in wanted if recorded.get(k) != wanted[k]) if isinstance(recorded, dict) else []
        )
        console.print(
            f"--auto: the record in {path} does not apply here"
            + (f" ({', '.join(changed)} changed)" if changed else "")
            + ": choosing again"
        )
    return choose(config_path, max_psnr_drop, console=console, **conditions_)
