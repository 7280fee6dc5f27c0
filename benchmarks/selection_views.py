"""Does ΔPSNR on training cameras predict ΔPSNR on eval views? (PSNR only, no timing.)

For one run: stock and ``--num-candidates`` of ``--auto``'s candidates (evenly spaced over its list) render
``--train-views`` evenly spaced training cameras and every eval image (``--max-images``), at ``--rescale``.
Per candidate: mean and worst-view ΔPSNR to stock on each side. Printed and written to ``--output``:
Pearson's r of the training cameras' mean ΔPSNR against the eval views' across candidates, and how the
rule of :data:`nerfinternals.views.SELECTION_RULE` on the training cameras agrees with the eval views'
mean within ``--within-db`` (a *false accept*: within on every training camera, outside on the eval views).

    python -m benchmarks.selection_views --load-config RUN/config.yml --rescale 0.125 --output sel.json
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from rich.console import Console
from rich.table import Table

from nerfinternals.auto import candidates, label
from nerfinternals.common import progress_bar, rgb_output, write_json
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.metrics import image_metrics
from nerfinternals.views import TRAIN_VIEWS, evenly_spaced, split_views, worst_view_delta

CONSOLE = Console(width=140)


@dataclass
class SelectionViews:
    load_config: Path
    """The run's config.yml."""
    output: Path
    """Where the figures go (JSON); never overwritten unless --overwrite."""
    rescale: float = 0.125
    """Render every view at this fraction of its resolution."""
    train_views: int = TRAIN_VIEWS
    """Training cameras, evenly spaced by name."""
    max_images: int | None = None
    """At most N eval images (default: all)."""
    num_candidates: int = 12
    """How many of --auto's candidates, evenly spaced over its list."""
    within_db: float = 0.1
    """The budget the agreement is counted for."""
    device: str = "cpu"
    overwrite: bool = False


def pearson(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or statistics.pstdev(x) == 0 or statistics.pstdev(y) == 0:
        return None
    return statistics.correlation(x, y)


def measure(cfg: SelectionViews) -> dict:
    if cfg.output.exists() and not cfg.overwrite:
        raise InputError(f"{cfg.output} exists (--overwrite replaces it)")
    _, pipeline, ckpt, step = load_pipeline(cfg.load_config, device=cfg.device)
    model = pipeline.model
    model.set_inference()
    split = split_views(pipeline.datamanager, cfg.max_images, "train", cfg.train_views)
    current = model.inference_settings()
    every = candidates(model, current["grid_resolution"])
    chosen = [every[i] for i in evenly_spaced(len(every), cfg.num_candidates)]
    sides = {"train": split.selection, "eval": split.report}
    psnrs: dict[str, dict[str, list[float]]] = {side: {"stock": []} for side in sides}
    progress = progress_bar(CONSOLE)
    total = sum(len(s.indices) for s in sides.values()) * (1 + len(chosen))
    with progress, torch.inference_mode():
        task = progress.add_task("rendering", total=total)
        for side, views in sides.items():
            for _, bundle, target in views.views(model, cfg.rescale):
                rgb = rgb_output(model.render_stock(bundle))
                psnrs[side]["stock"].append(image_metrics(rgb.float(), target, None)["psnr"])
                progress.advance(task)
                for settings in chosen:
                    rgb = model.render_setting(bundle, {**current, **settings})["rgb"]
                    psnrs[side].setdefault(label(settings), []).append(
                        image_metrics(rgb.float(), target, None)["psnr"]
                    )
                    progress.advance(task)
    rows = []
    for settings in chosen:
        name = label(settings)
        row = {"configuration": name}
        for side in sides:
            deltas = [p - b for p, b in zip(psnrs[side][name], psnrs[side]["stock"], strict=True)]
            row[f"{side}_mean"] = statistics.fmean(deltas)
            row[f"{side}_worst"] = worst_view_delta(psnrs[side][name], psnrs[side]["stock"])
        row["rule_on_train"] = row["train_worst"] >= -cfg.within_db
        row["mean_on_train"] = row["train_mean"] >= -cfg.within_db
        row["within_on_eval"] = row["eval_mean"] >= -cfg.within_db
        rows.append(row)

    def count(rule: str) -> dict:
        return {
            "accepted": sum(r[rule] for r in rows),
            "false_accepts": sum(r[rule] and not r["within_on_eval"] for r in rows),
            "false_rejects": sum(not r[rule] and r["within_on_eval"] for r in rows),
        }

    result = {
        "config": str(cfg.load_config),
        "checkpoint": ckpt.name,
        "step": step,
        "rescale": cfg.rescale,
        "within_db": cfg.within_db,
        **split.record(),
        "psnr": psnrs,
        "rows": rows,
        "pearson_mean_train_vs_eval": pearson(
            [r["train_mean"] for r in rows], [r["eval_mean"] for r in rows]
        ),
        "every_training_camera": count("rule_on_train"),
        "mean_of_training_cameras": count("mean_on_train"),
    }
    write_json(cfg.output, result)
    return result


def show(result: dict) -> None:
    table = Table(title=f"ΔPSNR to stock ({result['view_rule']}; {len(result['report_views'])} eval views)")
    for col in ("configuration", "train mean", "train worst", "eval mean", "eval worst"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for r in result["rows"]:
        table.add_row(
            r["configuration"],
            *(f"{r[k]:+.2f}" for k in ("train_mean", "train_worst", "eval_mean", "eval_worst")),
        )
    CONSOLE.print(table)
    r = result["pearson_mean_train_vs_eval"]
    CONSOLE.print(f"Pearson r (train mean vs eval mean): {'n/a' if r is None else f'{r:.3f}'}")
    for rule in ("every_training_camera", "mean_of_training_cameras"):
        CONSOLE.print(f"{rule.replace('_', ' ')} within {result['within_db']} dB: {json.dumps(result[rule])}")


def main() -> None:
    cfg = tyro.cli(SelectionViews)
    try:
        show(measure(cfg))
    except InputError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
