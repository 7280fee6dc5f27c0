#!/usr/bin/env python
"""Merge the results of several benchmark invocations (one run each, say) into one folder.

``benchmarks.speed_quality`` writes one folder per invocation; benchmarking runs one at a time keeps
each finished run's results when a later one is stopped. This joins them: the ``runs`` of every
``results.json`` in order, their pictures copied, ``results.md`` and ``pareto.png`` written again. Nothing
is measured or changed.

    python -m benchmarks.merge_results --inputs out/fox out/fern --output-dir benchmarks/results/real-cpu
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from benchmarks.report import markdown, pareto_plot
from nerfinternals.common import atomic_write, run_cli, write_json
from nerfinternals.loading import InputError


@dataclass
class MergeResults:
    """Join the runs of several benchmark folders into one results.json, results.md and pareto.png."""

    inputs: tuple[Path, ...]
    """Folders written by benchmarks.speed_quality, in the order their runs are listed."""
    output_dir: Path = Path("benchmarks/results/merged")
    """The merged folder (new, or empty)."""


def merge(cfg: MergeResults) -> dict:
    if not cfg.inputs:
        raise InputError("--inputs needs at least one benchmark folder")
    parts = []
    for folder in cfg.inputs:
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise InputError(f"{path} not found: --inputs takes folders written by benchmarks.speed_quality")
        parts.append((Path(folder), json.loads(path.read_text())))
    out = Path(cfg.output_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"output folder {out} is not empty: choose another --output-dir")
    machines = sorted({results["machine"] for _, results in parts})
    allocators = sorted({results.get("allocator", "default") for _, results in parts})
    merged: dict = {"machine": " / ".join(machines), "allocator": " / ".join(allocators), "runs": []}
    labels: set[str] = set()
    for folder, results in parts:
        for run in results["runs"]:
            picture = run.get("picture")
            label = run.get("label", run["method"])
            while label in labels:
                label += "+"
            labels.add(label)
            run = {**run, "label": label, "source": str(folder)}
            if picture:
                run["picture"] = f"{label}.png"
            merged["runs"].append((run, folder / picture if picture else None))
    out.mkdir(parents=True, exist_ok=True)
    for run, picture in merged["runs"]:
        if picture is not None and picture.is_file():
            shutil.copyfile(picture, out / run["picture"])
    merged["runs"] = [run for run, _ in merged["runs"]]
    write_json(out / "results.json", merged)
    atomic_write(out / "results.md", lambda p: p.write_text(markdown(merged)))
    pareto_plot(merged, out / "pareto.png")
    print(f"{len(merged['runs'])} runs from {len(parts)} folders in {out}")
    return merged


def entrypoint() -> None:
    run_cli(MergeResults, merge)


if __name__ == "__main__":
    entrypoint()
