#!/usr/bin/env python3
"""Collect the eval.py summaries of every run under an output root into one results table.

A run is a folder holding ``config.yml`` (as ns-train writes them:
``OUTPUT_ROOT/<scene>/<method>/<timestamp>/config.yml``); its evaluation is
``<run>/<eval dir>/summary.json`` (written by ``nerfinternals/eval.py``). Rows are grouped by method,
dataset kind (from the run's dataparser: blender, llff, nerfstudio, ...; "+ndc" when the model
samples in NDC) and experiment (``base`` = the stock coarse-to-fine pipeline, then
``layer_LL_ups_U_fct_NAME``); each row is the mean over the runs (scenes) of that group, like the
authors' README table. Writes ``results.md`` and ``results.json``; standard library only (config.yml is
read as text, not constructed).

    python scripts/collect_results.py OUTPUT_ROOT [--eval-dir eval] [--results-dir DIR]
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


def read_run(run: Path, eval_dir: str) -> dict:
    """One run's identity and, when evaluated, its summary."""
    text = (run / "config.yml").read_text(errors="replace")
    entry = {
        "run": str(run),
        "method": _field(text, "method_name") or run.parent.name,
        "scene": _field(text, "experiment_name") or run.parent.parent.name,
        "data": dataset_kind(text),
        "summary": None,
    }
    path = run / eval_dir / "summary.json" if not Path(eval_dir).is_absolute() else Path(eval_dir)
    if path.is_file():
        try:
            entry["summary"] = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            entry["error"] = f"unreadable {path}: {err}"
    return entry


def _mean(values: list) -> float | None:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def table_rows(entries: list[dict]) -> list[dict]:
    """Mean metrics per (method, data, experiment) over the evaluated runs."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for entry in entries:
        summary = entry["summary"]
        if not summary:
            continue
        method = summary.get("method") or entry["method"]
        if summary.get("base"):
            base = {**summary["base"], "time_ratio": 1.0, "macs_ratio": 1.0}
            groups.setdefault((method, entry["data"], "base"), []).append(base)
        for name, exp in summary.get("experiments", {}).items():
            groups.setdefault((method, entry["data"], name), []).append(exp)
    rows = []
    for (method, data, experiment), values in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "base", kv[0][2])
    ):
        row = {"method": method, "data": data, "experiment": experiment, "runs": len(values)}
        row.update({k: _mean([v.get(k) for v in values]) for k in METRICS})
        rows.append(row)
    return rows


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict], entries: list[dict]) -> str:
    lines = [
        "| method | data | experiment | runs | PSNR | SSIM | LPIPS | time ratio | MAC ratio |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['data']} | {r['experiment']} | {r['runs']} | {_fmt(r['psnr'], 2)} | "
            f"{_fmt(r['ssim'], 4)} | {_fmt(r['lpips'], 4)} | {_fmt(r['time_ratio'], 3)} | "
            f"{_fmt(r['macs_ratio'], 3)} |"
        )
    missing = [e for e in entries if not e["summary"]]
    text = "# Results\n\nMeans over runs (scenes); time ratio = ours / stock coarse-to-fine.\n\n"
    text += "\n".join(lines) + "\n"
    if missing:
        text += "\nRuns without an evaluation summary:\n\n"
        text += "".join(f"- {e['run']}{' (' + e['error'] + ')' if 'error' in e else ''}\n" for e in missing)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_root", type=Path, help="folder holding the runs (searched recursively)")
    parser.add_argument("--eval-dir", default="eval", help="eval.py --output-dir of the runs (default: eval)")
    parser.add_argument(
        "--results-dir", type=Path, help="where to write results.{md,json} (default: OUTPUT_ROOT)"
    )
    args = parser.parse_args(argv)
    if not args.output_root.is_dir():
        print(f"error: output root not found: {args.output_root}", file=sys.stderr)
        return 2
    entries = [read_run(run, args.eval_dir) for run in find_runs(args.output_root)]
    if not entries:
        print(f"error: no runs (config.yml) under {args.output_root}", file=sys.stderr)
        return 2
    rows = table_rows(entries)
    out = args.results_dir or args.output_root
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"rows": rows, "runs": entries}, indent=2) + "\n")
    text = markdown(rows, entries)
    (out / "results.md").write_text(text)
    print(text, end="")
    print(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
