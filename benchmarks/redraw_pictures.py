#!/usr/bin/env python
"""Draw the pictures of a benchmark folder again: stock | the fastest within 0.1 dB | their difference.

For each run of ``results.json``, the first report view is rendered again by base and by the configuration
the benchmark picked (``targets.speed.product``: its render settings and precision, from the row), and
``<label>.png`` is written (replaced) with :func:`benchmarks.report.picture`. Times and metrics are not
measured again: the titles quote results.json.

    python -m benchmarks.redraw_pictures --results-dir benchmarks/results/real-cpu
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.report import picture
from nerfinternals.common import rgb_output, run_cli
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.precision import as_float32, precision_scope
from nerfinternals.views import split_views


@dataclass
class RedrawPictures:
    """Render and draw the picture of every run of a benchmark folder again."""

    results_dir: Path
    """A folder written by benchmarks.speed_quality (or benchmarks.merge_results)."""
    device: str | None = None
    """Torch device (default: cuda if available, else cpu)."""


def _image(outputs: dict):
    return rgb_output(as_float32(outputs)).float().clamp(0, 1).cpu().numpy()


def redraw(cfg: RedrawPictures) -> None:
    path = Path(cfg.results_dir) / "results.json"
    if not path.is_file():
        raise InputError(f"{path} not found")
    results = json.loads(path.read_text())
    for run in results["runs"]:
        if not run.get("picture"):
            continue
        _, pipeline, _, _ = load_pipeline(Path(run["config"]), device=cfg.device)
        model = pipeline.model
        model.set_inference(keep_near_plane=run["keep_near_plane"])
        split = split_views(pipeline.datamanager, run["num_images"])
        if split.report.names[:1] != run["report_views"][:1]:
            raise InputError(f"{run['config']}: its first report view is no longer {run['report_views'][0]}")
        _, bundle, _ = next(iter(split.report.views(model, run["rescale"])))
        base_name = next(n for n, r in run["methods"].items() if r["kind"] == "base")
        pick = run["targets"]["speed"]["product"]
        images = {"base_psnr": run["methods"][base_name]["psnr"], "fastest": None, "fastest_image": None,
                  "fastest_row": None}  # fmt: skip
        with torch.inference_mode():
            with precision_scope(run["precisions"][0], model.device):
                images["base"] = _image(model.render_stock(bundle))
            if pick:
                row = run["methods"][pick["name"]]
                with precision_scope(row["precision"], model.device):
                    outputs = model.render_sampled(bundle, **row["config"], stage_times=False)[0]
                images.update(fastest=pick["name"], fastest_image=_image(outputs), fastest_row=row)
        picture(images, Path(cfg.results_dir) / run["picture"])
        print(f"{run['picture']}: drawn")


def entrypoint() -> None:
    run_cli(RedrawPictures, redraw)


if __name__ == "__main__":
    entrypoint()
