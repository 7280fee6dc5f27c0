#!/usr/bin/env python3
"""Collect every eval.py summary under an output root into the results tables: per scene and mean.

A run is a folder holding ``config.yml`` (as ns-train writes them:
``OUTPUT_ROOT/<scene>/<method>/<timestamp>/config.yml``); its evaluations are the ``summary.json``
files below it (``<run>/<eval dir>/summary.json``, written by ``nerfinternals/eval.py``; every eval
folder by default, one with ``--eval-dir``). Rows are grouped by method, dataset kind (from the run's
dataparser: blender, llff, nerfstudio, ...; "+ndc" when the model samples in NDC), eval folder (one
folder = one set of eval.py settings: folders are never mixed) and experiment (``base`` = the stock
coarse-to-fine pipeline, then ``layer_LL_ups_U_fct_NAME``, ``grid64``, ...). The mean table averages
each group over its runs (scenes), like the authors' README table; the per-scene table lists every
run. Writes ``results.md`` and ``results.json``; standard library only (config.yml is read as text,
not constructed).

    python scripts/collect_results.py OUTPUT_ROOT [--eval-dir NAME] [--results-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

DATAPARSERS = {
    "LLFFDataParserConfig": "llff",
    "BlenderDataParserConfig": "blender",
    "NerfstudioDataParserConfig": "nerfstudio",
    "ColmapDataParserConfig": "colmap",
}
METRICS = ("psnr", "ssim", "lpips", "time_ratio", "macs_ratio")


def find_runs(root: Path) -> list[Path]:
    """Run folders (holding config.yml) under `root`, sorted."""
    return sorted(p.parent for p in root.rglob("config.yml"))


def dataset_kind(config_text: str) -> str:
    """blender / llff / nerfstudio / ... from the dataparser config class; "+ndc" for NDC models."""
    match = re.search(r"^\s*dataparser: !!python/object:[\w.]*?(\w+)\s*$", config_text, re.M)
    kind = DATAPARSERS.get(match.group(1), match.group(1)) if match else "unknown"
    if re.search(r"^\s*use_ndc_collider: true\s*$", config_text, re.M):
        kind += "+ndc"
    return kind


def _field(config_text: str, name: str) -> str | None:
    match = re.search(rf"^{name}: (.+)$", config_text, re.M)
    return match.group(1).strip() if match else None


def _run_of(summary: Path, runs: set[Path]) -> Path | None:
    """The run folder (holding config.yml) a summary.json lies in, if any."""
    return next((p for p in summary.parents if p in runs), None)


def read_runs(root: Path, eval_dir: str | None = None) -> list[dict]:
    """One entry per (run, evaluation): the run's identity and its summary (None for a run without one).

    ``eval_dir``: only ``<run>/<eval_dir>/summary.json`` (an absolute path: that file for every run);
    None: every summary.json below each run.
    """
    runs = find_runs(root)
    found: dict[Path, list[Path]] = {run: [] for run in runs}
    if eval_dir is None:
        run_set = set(runs)
        for path in sorted(root.rglob("summary.json")):
            run = _run_of(path, run_set)
            if run is not None:
                found[run].append(path)
    else:
        for run in runs:
            path = Path(eval_dir) if Path(eval_dir).is_absolute() else run / eval_dir / "summary.json"
            if path.is_file():
                found[run].append(path)
    entries = []
    for run in runs:
        text = (run / "config.yml").read_text(errors="replace")
        identity = {
            "run": str(run),
            "method": _field(text, "method_name") or run.parent.name,
            "scene": _field(text, "experiment_name") or run.parent.parent.name,
            "data": dataset_kind(text),
        }
        if not found[run]:
            entries.append({**identity, "eval_dir": None, "summary": None})
        for path in found[run]:
            entry = {**identity, "eval_dir": _eval_dir_name(path, run), "summary": None}
            try:
                entry["summary"] = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                entry["error"] = f"unreadable {path}: {err}"
            entries.append(entry)
    return entries


def _eval_dir_name(summary: Path, run: Path) -> str:
    try:
        return summary.parent.relative_to(run).as_posix()
    except ValueError:
        return str(summary.parent)


def _mean(values: list) -> float | None:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def _experiments(entry: dict) -> list[tuple[str, dict]]:
    """(experiment, its metrics) of an evaluated entry: ``base`` (ratios 1) first, then eval.py's."""
    summary = entry["summary"]
    found = []
    if summary.get("base"):
        found.append(("base", {**summary["base"], "time_ratio": 1.0, "macs_ratio": 1.0}))
    found += list(summary.get("experiments", {}).items())
    return found


def _order(row: dict) -> tuple:
    return (row["method"], row["data"], row["eval_dir"] or "", row["experiment"] != "base", row["experiment"])


def table_rows(entries: list[dict]) -> list[dict]:
    """Mean metrics per (method, data, eval folder, experiment) over the evaluated runs."""
    groups: dict[tuple[str, str, str, str], list[dict]] = {}
    for entry in entries:
        if not entry["summary"]:
            continue
        method = entry["summary"].get("method") or entry["method"]
        for name, exp in _experiments(entry):
            groups.setdefault((method, entry["data"], entry["eval_dir"], name), []).append(exp)
    rows = []
    for (method, data, eval_dir, experiment), values in groups.items():
        row = {"method": method, "data": data, "eval_dir": eval_dir, "experiment": experiment}
        row["runs"] = len(values)
        row.update({k: _mean([v.get(k) for v in values]) for k in METRICS})
        rows.append(row)
    return sorted(rows, key=_order)


def scene_rows(entries: list[dict]) -> list[dict]:
    """Every evaluated run's metrics per experiment."""
    rows = []
    for entry in entries:
        if not entry["summary"]:
            continue
        method = entry["summary"].get("method") or entry["method"]
        for name, exp in _experiments(entry):
            row = {"scene": entry["scene"], "method": method, "data": entry["data"]}
            row.update(eval_dir=entry["eval_dir"], experiment=name, run=entry["run"])
            row.update({k: _mean([exp.get(k)]) for k in METRICS})
            rows.append(row)
    return sorted(rows, key=lambda r: (*_order(r), r["scene"]))


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _metric_cells(r: dict) -> str:
    return (
        f"{_fmt(r['psnr'], 2)} | {_fmt(r['ssim'], 4)} | {_fmt(r['lpips'], 4)} | {_fmt(r['time_ratio'], 3)} | "
        f"{_fmt(r['macs_ratio'], 3)} |"
    )


def markdown(rows: list[dict], entries: list[dict], per_scene: list[dict] | None = None) -> str:
    """The mean table (one per eval folder when there are several), the per-scene table, missing runs."""
    text = "# Results\n\nMeans over runs (scenes); time ratio = ours / stock coarse-to-fine.\n"
    eval_dirs = sorted({r["eval_dir"] or "" for r in rows})
    for eval_dir in eval_dirs:
        if len(eval_dirs) > 1:
            text += f"\n## Eval folder `{eval_dir}`\n"
        text += (
            "\n| method | data | experiment | runs | PSNR | SSIM | LPIPS | time ratio | MAC ratio |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|\n"
        )
        for r in rows:
            if (r["eval_dir"] or "") == eval_dir:
                text += (
                    f"| {r['method']} | {r['data']} | {r['experiment']} | {r['runs']} | {_metric_cells(r)}\n"
                )
    if per_scene:
        text += (
            "\n## Per scene\n\n"
            "| scene | method | data | eval folder | experiment | PSNR | SSIM | LPIPS | time ratio | MAC ratio |\n"
            "|---|---|---|---|---|---:|---:|---:|---:|---:|\n"
        )
        for r in per_scene:
            text += (
                f"| {r['scene']} | {r['method']} | {r['data']} | {r['eval_dir']} | {r['experiment']} | "
                f"{_metric_cells(r)}\n"
            )
    missing = [e for e in entries if not e["summary"]]
    if missing:
        text += "\nRuns without an evaluation summary:\n\n"
        text += "".join(f"- {e['run']}{' (' + e['error'] + ')' if 'error' in e else ''}\n" for e in missing)
    return text


def _write(path: Path, text: str) -> None:
    """Written whole: a temporary file beside it, then a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_root", type=Path, help="folder holding the runs (searched recursively)")
    parser.add_argument(
        "--eval-dir",
        help="only this eval.py --output-dir of each run (default: every summary.json below a run)",
    )
    parser.add_argument(
        "--results-dir", type=Path, help="where to write results.{md,json} (default: OUTPUT_ROOT)"
    )
    args = parser.parse_args(argv)
    if not args.output_root.is_dir():
        print(f"error: output root not found: {args.output_root}", file=sys.stderr)
        return 2
    entries = read_runs(args.output_root, args.eval_dir)
    if not entries:
        print(f"error: no runs (config.yml) under {args.output_root}", file=sys.stderr)
        return 2
    rows, per_scene = table_rows(entries), scene_rows(entries)
    out = args.results_dir or args.output_root
    out.mkdir(parents=True, exist_ok=True)
    results = {"rows": rows, "per_scene": per_scene, "runs": entries}
    text = markdown(rows, entries, per_scene)
    _write(out / "results.json", json.dumps(results, indent=2) + "\n")
    _write(out / "results.md", text)
    print(text, end="")
    print(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
