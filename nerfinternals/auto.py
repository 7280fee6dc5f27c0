"""``--auto``: the fastest activation-informed configuration within a PSNR budget, chosen on a run's val images.

Every candidate configuration of ours (:func:`candidates`) and the stock sampler render the run's
val images (``test_mode="val"``) in one process, at the precision, resolution and near plane asked
for; the fastest candidate (total synchronised wall time, after a warm-up) whose mean PSNR is at
least stock's minus the budget is chosen. If none is, the choice is the stock sampler. The choice,
every candidate's figures and why are written to ``<run dir>/nerfinternals_auto.json``, which later
``--auto`` calls (``eval.py``, ``ns-internals-render``) reuse while the checkpoint, budget,
precision and near-plane setting match.
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from nerfinternals.common import eval_views, mean_or_none, timed, write_json
from nerfinternals.internals import FCT_NAMES, num_probe_layers
from nerfinternals.loading import InputError, checkpoint_path, load_pipeline, read_config
from nerfinternals.metrics import image_metrics
from nerfinternals.precision import precision_scope
from nerfinternals.utils import warmup_crop

AUTO_FILE = "nerfinternals_auto.json"

PROBE_FIELDS = ("probe_layer", "probe_fct", "probe_upsample", "probe_gate", "probe_samples", "probe_in_box")
"""The inference-setting fields a choice sets (precision and the near plane are conditions of it)."""


def candidates(model) -> list[dict]:
    """The configurations ``--auto`` tries: layers 0..2 x the three transforms, each as the paper runs it
    and with the sampling options of :class:`~nerfinternals.models.base.ActivationInferenceConfig`
    (half the probe samples; inside the scene box where the model has one; pixel upsampling)."""
    layers = range(min(3, num_probe_layers(model.probe_mlp)))
    half = model.num_probe_samples // 2
    boxed = model.probe_box() is not None
    variants = [
        {},
        {"probe_samples": half},
        {"probe_upsample": True},
        *([{"probe_in_box": True}, {"probe_in_box": True, "probe_samples": half}] if boxed else []),
    ]
    base = {"probe_upsample": False, "probe_gate": False, "probe_samples": 0, "probe_in_box": False}
    return [
        {"inference_sampler": "activation", **base, "probe_layer": layer, "probe_fct": fct, **variant}
        for layer in layers
        for fct in FCT_NAMES
        for variant in variants
    ]


def render_kwargs(settings: dict) -> dict:
    """``render_with_activations`` keyword arguments of an inference setting."""
    return {
        "layer": settings["probe_layer"],
        "fct": settings["probe_fct"],
        "upsample": settings["probe_upsample"],
        "gate": settings["probe_gate"],
        "n_probe": settings["probe_samples"] or None,
        "in_box": settings["probe_in_box"],
    }


def label(settings: dict) -> str:
    """A short name of a configuration, e.g. ``l1 std_half n32 box``."""
    if settings["inference_sampler"] == "stock":
        return "stock"
    text = f"l{settings['probe_layer']} {settings['probe_fct']}"
    if settings["probe_samples"]:
        text += f" n{settings['probe_samples']}"
    for key, tag in (("probe_in_box", "box"), ("probe_upsample", "ups"), ("probe_gate", "gate")):
        if settings[key]:
            text += f" {tag}"
    return text


def choose(
    config_path: Path,
    max_psnr_drop: float,
    device: str | None = None,
    precision: str = "fp32",
    rescale: float = 1.0,
    keep_near_plane: bool = False,
    max_images: int | None = None,
    console: Console | None = None,
) -> dict:
    """Measure every candidate on the run's val images, choose, record and return the record."""
    console = console or Console()
    config, pipeline, ckpt, step = load_pipeline(config_path, device=device, test_mode="val")
    model = pipeline.model
    model.set_inference(keep_near_plane=keep_near_plane)
    views = list(eval_views(model, pipeline.datamanager.fixed_indices_eval_dataloader, max_images, rescale))
    if not views:
        raise InputError(
            f"--auto needs val images: the run's data has none ({config.pipeline.datamanager.data})"
        )
    options = candidates(model)
    console.print(
        f"--auto: {len(options)} configurations and stock on {len(views)} val image(s) "
        f"of {views[0][1].shape[1]}x{views[0][1].shape[0]} px ({precision}, {model.device})"
    )

    def measure(render) -> dict:
        times, psnrs = [], []
        for _, bundle, target in views:
            outputs, t = timed(model.device, lambda bundle=bundle: render(bundle))
            rgb = outputs["rgb_fine"] if "rgb_fine" in outputs else outputs["rgb"]
            times.append(t)
            psnrs.append(image_metrics(rgb.float(), target, None)["psnr"])
        return {"t": sum(times), "psnr": mean_or_none(psnrs)}

    start = time.perf_counter()
    with torch.inference_mode(), precision_scope(precision, model.device):
        bundle = views[0][1]
        crop = warmup_crop(bundle)
        model.render_stock(crop)  # warm-up: one-time costs stay out of the timings
        base = measure(model.render_stock)
        rows = []
        for settings in options:
            kwargs = render_kwargs(settings)
            model.render_with_activations(crop, **kwargs)
            row = measure(lambda b, kwargs=kwargs: model.render_with_activations(b, **kwargs)[0])
            row.update(
                settings=settings,
                time_ratio=row["t"] / base["t"],
                psnr_delta=row["psnr"] - base["psnr"],
                within_budget=row["psnr"] >= base["psnr"] - max_psnr_drop,
            )
            rows.append(row)
    within = [r for r in rows if r["within_budget"]]
    stock = {"inference_sampler": "stock", **{k: getattr(model.config, k) for k in PROBE_FIELDS}}
    if within:
        best = min(within, key=lambda r: r["t"])
        chosen = best["settings"]
        reason = (
            f"{label(chosen)} is the fastest of the {len(within)} of {len(rows)} configurations whose PSNR on "
            f"{len(views)} val image(s) is within {max_psnr_drop} dB of stock ({base['psnr']:.2f} dB): "
            f"{best['psnr']:.2f} dB ({best['psnr_delta']:+.2f}) at {best['time_ratio']:.3f} of stock's time"
        )
    else:
        chosen = stock
        closest = max(rows, key=lambda r: r["psnr"])
        reason = (
            f"no configuration is within {max_psnr_drop} dB of stock ({base['psnr']:.2f} dB) on {len(views)} val "
            f"image(s) (closest: {label(closest['settings'])}, {closest['psnr_delta']:+.2f} dB): stock sampler"
        )
    record = {
        "chosen": chosen,
        "reason": reason,
        "max_psnr_drop": max_psnr_drop,
        "checkpoint": ckpt.name,
        "step": step,
        "method": config.method_name,
        "device": str(model.device),
        "precision": precision,
        "rescale": rescale,
        "keep_near_plane": keep_near_plane,
        "val_images": len(views),
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
        title=f"--auto on val images (stock: {record['base']['psnr']:.2f} dB, {record['base']['t']:.2f} s)"
    )
    for col in ("configuration", "t ratio", "ΔPSNR", f"within {record['max_psnr_drop']} dB"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for row in sorted(record["candidates"], key=lambda r: r["t"]):
        table.add_row(
            label(row["settings"]),
            f"{row['time_ratio']:.3f}",
            f"{row['psnr_delta']:+.2f}",
            "yes" if row["within_budget"] else "no",
        )
    console.print(table)
    console.print(f"--auto chose {label(record['chosen'])}: {record['reason']}")


def auto_settings(
    config_path: Path, max_psnr_drop: float, console: Console | None = None, **conditions
) -> dict:
    """The chosen inference setting (probe fields and ``inference_sampler``): the recorded one when it
    matches the run's checkpoint, the budget, the precision and the near plane, else chosen now by
    :func:`choose` (``conditions``: its ``device``, ``precision``, ``rescale``, ``keep_near_plane``,
    ``max_images``)."""
    console = console or Console()
    if max_psnr_drop < 0:
        raise InputError(f"--max-psnr-drop must be at least 0, got {max_psnr_drop}")
    path = Path(config_path).parent / AUTO_FILE
    if path.is_file():
        try:
            record = json.loads(path.read_text())
            ckpt = checkpoint_path(config_path, read_config(config_path))
            fits = (
                record["checkpoint"] == ckpt.name
                and record["max_psnr_drop"] == max_psnr_drop
                and record["precision"] == conditions.get("precision", "fp32")
                and record["keep_near_plane"] == conditions.get("keep_near_plane", False)
            )
        except (ValueError, KeyError, TypeError):
            fits = False
        if fits:
            console.print(
                f"--auto: using the choice recorded in {path} ({record['val_images']} val image(s) of "
                f"{record['image_shape'][1]}x{record['image_shape'][0]} px on {record['device']}): {label(record['chosen'])}"
            )
            return record["chosen"]
    return choose(config_path, max_psnr_drop, console=console, **conditions)["chosen"]
