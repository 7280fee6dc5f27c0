"""The benchmark's report: Markdown tables, console tables, target lines and the Pareto plot."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.targets import BEST_PSNR_LOSS_DB, pareto_front
from benchmarks.where_time_goes import sentence
from nerfinternals.common import atomic_write


def _f(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


COLUMNS = (
    "method",
    "t [s] median (min–max)",
    "t ratio",
    "MAC ratio",
    "PSNR",
    "ΔPSNR",
    "SSIM",
    "ΔSSIM",
    "LPIPS",
    "predicted t ratio",
    "mem [MB]",
    "fill [s]",
    "speed-up 1 image incl. fill",
    "fill paid after (images)",
)
PRECISION_COLUMN = "ΔPSNR to base at its precision"
NOISE_MARK = "≈"
"""Marks a time ratio whose difference from 1 is within the run's stock-vs-stock noise floor."""


def _columns(run: dict) -> tuple[str, ...]:
    return COLUMNS + ((PRECISION_COLUMN,) if len(run["precisions"]) > 1 else ())


def _cells(name: str, row: dict, run: dict) -> list[str]:
    fill = row.get("fill_seconds")
    pays = row.get("fill_pays_after_images")
    cells = [
        name,
        f"{_f(row['t'], '.3f')} ({_f(row.get('t_min'), '.3f')}–{_f(row.get('t_max'), '.3f')})",
        (NOISE_MARK if row.get("within_noise") else "") + _f(row["time_ratio"], ".3f"),
        _f(row["macs_ratio"], ".3f"),
        _f(row["psnr"], ".2f"),
        _f(row["psnr_delta"], "+.2f"),
        _f(row["ssim"], ".4f"),
        _f(row["ssim_delta"], "+.4f"),
        _f(row["lpips"], ".4f"),
        _f(row.get("predicted_time_ratio"), ".3f"),
        _f(row["peak_mem_mb"], ".1f"),
        _f(fill, ".2f"),
        "" if fill is None else f"{row['speedup_one_image']:.2f}x",
        "" if fill is None else ("never" if pays is None else str(pays)),
    ]
    return cells + ([_f(row["psnr_delta_same_precision"], "+.2f")] if len(run["precisions"]) > 1 else [])


def _speed_line(label: str, x: dict | None) -> str:
    if x is None:
        return f"{label}: none within the budget on the selection views"
    line = f"{label}: {x['name']} {x['speedup']:.2f}x"
    if x.get("speedup_over_shipped") is not None:
        line += f" ({x['speedup_over_shipped']:.2f}x over stock nerfstudio as shipped)"
    line += f" ({x['time_ratio']:.3f}, {x['psnr_delta']:+.2f} dB"
    if x.get("selection_psnr_delta") is not None:
        line += f" on the report views, {x['selection_psnr_delta']:+.2f} dB on the selection views"
        if x.get("selection_psnr_delta_worst_view") is not None:
            line += f" (worst {x['selection_psnr_delta_worst_view']:+.2f})"
    if not x.get("within_on_report_views", True):
        line += ", outside the budget on the report views"
    if x.get("fill_seconds") is not None:
        pays = x["fill_pays_after_images"]
        line += f"; with its {x['fill_seconds']:.2f} s fill {x['speedup_one_image']:.2f}x for one image, " + (
            "never paid back" if pays is None else f"paid back after {pays} image(s)"
        )
    return line + ")"


def header_lines(run: dict) -> list[str]:
    """What the run chose on and reported on, the method order and the noise floor, one line each."""
    floors = ", ".join(f"{100 * f:.1f} % ({p})" for p, f in run["noise_floor"].items())
    return [
        f"selection views ({run['view_rule']}): {', '.join(run['selection_views'])}",
        f"report views (every figure below): {', '.join(run['report_views'])}",
        f"methods in a new shuffled order for each of the {run['repeats']} repeats (order seed "
        f"{run['order_seed']}); times: median (min–max) over repeats of the mean time per image"
        + (
            f"; {run['selection_repeats']} repeat(s) per selection view"
            if run.get("selection_repeats", run["repeats"]) != run["repeats"]
            else ""
        ),
        f"noise floor (stock against stock run again, largest difference over repeats): {floors}; "
        f"{NOISE_MARK} marks a time ratio whose difference from 1 is within it",
    ] + [
        f"density grid {resolution}^3{f' ({source})' if source else ''} fill: {f['median']:.2f} s (min "
        f"{f['min']:.2f}, max {f['max']:.2f}) once per loaded model, not in the per-image time or MACs; "
        "counted in the fill columns"
        for (resolution, _, source), f in ((r.partition("-"), f) for r, f in run["grid_fill_seconds"].items())
    ]


def target_lines(t: dict) -> list[str]:
    """One line per target of :func:`benchmarks.targets.targets`."""
    lines = []
    if "speed" in t:
        x = t["speed"]
        lines.append(
            f"fastest within {x['within_db']} dB of base: "
            + "; ".join(
                _speed_line(label, x[key])
                for key, label in (
                    ("product", "product"),
                    ("activation", "activation estimate (incl. hybrid)"),
                    ("grid", "density grid"),
                    ("alternatives", "alternatives"),
                )
            )
            + (f"; the better estimate here: {x['winner']}" if x["winner"] else "")
        )
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
    if "cost_model" in t:
        x = t["cost_model"]
        worst = sorted(x["outside"].items(), key=lambda kv: -abs(kv[1]))[:3]
        lines.append(
            f"cost model's predicted time ratio within {100 * x['tolerance']:.0f} % of the measured one: "
            f"{'met' if x['met'] else 'missed'} ({x['rows']} rows at fp32; median error "
            f"{100 * x['median_abs_error']:.0f} %, max {100 * x['max_abs_error']:.0f} %"
            + (
                f"; {len(x['outside'])} outside, e.g. " + ", ".join(f"{n} {100 * e:+.0f} %" for n, e in worst)
                if worst
                else ""
            )
            + ")"
        )
    if "gate" in t:
        x = t["gate"]
        lines.append(
            f"gate: time ratio <= {x['time_ratio_max']} at <= {x['psnr_loss_max']} dB loss: "
            f"{'met' if x['met'] else 'missed'} (fastest {x['fastest']}: ratio {x['fastest_time_ratio']:.3f}, "
            f"{x['fastest_psnr_delta']:+.2f} dB)"
        )
    return lines


def goal_lines(run: dict) -> list[str]:
    """One line per speed goal (:func:`benchmarks.targets.speed_goals`): met, or missed by how much."""
    lines = []
    for key, g in run.get("goals", {}).items():
        if g["speedup"] is None:
            lines.append(
                f"goal ≥ {g['goal']:.0f}x at {key} within 0.1 dB: missed (no configuration within the budget)"
            )
            continue
        has = f"{g['pick']}: {g['speedup']:.2f}x"
        if g["met"]:
            lines.append(f"goal ≥ {g['goal']:.0f}x at {key} within 0.1 dB: met ({has})")
        elif g["short_by"] is None:
            lines.append(
                f"goal ≥ {g['goal']:.0f}x at {key} within 0.1 dB: missed ({has}, chosen on the selection views, "
                "is outside 0.1 dB on the report views)"
            )
        else:
            outside = "" if g["within_on_report_views"] else ", and outside 0.1 dB on the report views"
            lines.append(
                f"goal ≥ {g['goal']:.0f}x at {key} within 0.1 dB: missed by {g['short_by']:.2f}x "
                f"({100 * g['short_by'] / g['goal']:.0f} % short; {has}{outside})"
            )
    return lines


def time_lines(run: dict) -> list[str]:
    """Where the time goes on one report view: base and each pick, parts largest first."""
    w = run.get("where_time_goes")
    if not w:
        return []
    return [sentence(name, parts) for name, parts in w["parts"].items()]


def picture(images: dict, path: Path) -> None:
    """stock | the fastest within the budget | |fastest - stock| of one report view, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    base, fastest = images["base"], images["fastest_image"]
    row = images["fastest_row"]
    panels = 3 if fastest is not None else 1
    height, width = base.shape[:2]
    panel = max(3.2, 3.6 * width / height)
    fig, axes = plt.subplots(1, panels, figsize=(panel * panels + 0.6, 3.6 * max(height / width, 0.6) + 1.0))
    axes = np.atleast_1d(axes)
    axes[0].imshow(base)
    axes[0].set_title(f"stock\n{images['base_psnr']:.2f} dB on the report views", fontsize=8)
    if fastest is not None:
        axes[1].imshow(fastest)
        axes[1].set_title(
            f"fastest within 0.1 dB (picked on\nthe selection views): {images['fastest']}\n"
            f"{1 / row['time_ratio']:.2f}x faster, {row['psnr_delta']:+.2f} dB on the report views",
            fontsize=8,
        )
        error = np.abs(fastest - base).mean(axis=-1)
        shown = axes[2].imshow(error, cmap="inferno", vmin=0.0, vmax=0.1)
        axes[2].set_title(
            f"|fastest - stock|, colour mean\n(mean {error.mean():.4f}; scale 0-0.1)", fontsize=8
        )
        fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.02)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def markdown(results: dict) -> str:
    out = ["# Speed / quality benchmark", ""]
    for run in results["runs"]:
        h, w = run["image_shape"]
        out += [
            f"## {run.get('label', run['method'])} ({run['model']}, step {run['step']})",
            "",
            f"{run['num_images']} report image(s) of {w}x{h} px on {run['device']} ({results['machine']}, {results.get('allocator', 'default')} allocator); "
            f"median of {run['repeats']} renders per image after a warm-up; N = {run['num_probe_samples']} "
            f"probe samples; LPIPS backbone {run['lpips_backbone']}; memory: "
            + (
                "not measured"
                if all(r.get("peak_mem_mb") is None for r in run["methods"].values())
                else "CUDA peak allocated"
                if run["device"].startswith("cuda")
                else "growth of process RSS"
            )
            + f"; rescale {run['rescale']}; near plane at eval: "
            + ("the training one" if run["keep_near_plane"] else "0 (nerfstudio's reset)")
            + f"; precision {', '.join(run['precisions'])} (ratios and deltas to base at {run['precisions'][0]})",
            "",
            *[f"- {line}" for line in header_lines(run)],
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
            out += [f"- {prefix}{line}" for line in target_lines(t)]
        if len(run["precisions"]) > 1:
            speed = {"speed": run["targets"]["speed"]}
            out += [
                f"- [any precision, against base at {run['precisions'][0]}] {line}"
                for line in target_lines(speed)
            ]
        out += [f"- {line}" for line in goal_lines(run)]
        if run.get("where_time_goes"):
            out += [
                "",
                f"Where the time goes (one untimed profiled render of report view {run['where_time_goes']['view']}, "
                "median of the repeats; each second counted in the innermost part running: "
                "benchmarks/where_time_goes.py):",
                "",
                *[f"- {line}" for line in time_lines(run)],
            ]
        if run.get("picture"):
            out += ["", f"![stock, the fastest within 0.1 dB, and their difference]({run['picture']})"]
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
        rows = {
            n: r
            for n, r in run["methods"].items()
            if r["precision"] == precision and r["kind"] not in ("noise", "shipped")
        }
        x = {n: r["time_ratio_same_precision"] for n, r in rows.items()}
        y = {n: r["psnr_delta_same_precision"] for n, r in rows.items()}
        labelled: set[str] = set()
        for name, r in rows.items():
            if r["kind"] == "base":
                style, label = dict(marker="*", s=220, color="black"), "base (stock)"
            elif r["kind"] == "alternative":
                style, label = dict(marker="s", s=70, color="tab:red"), name.split(" @")[0]
            elif r["config"]["sampler"] == "grid":
                style, label = dict(marker="P", s=70, color="tab:purple"), "density grid (product)"
            elif r["config"]["sampler"] == "hybrid":
                c = r["config"]
                style = dict(marker="X", s=55, color=colors.get(c["layer"], "gray"))
                label = f"hybrid layer {c['layer']}"
            else:
                c = r["config"]
                color = colors.get(c["layer"], "gray")
                sampling = c["in_box"] or c["n_probe"] or c["fine_samples"]
                marker = "^" if c["gate"] else ("D" if sampling else "o")
                style = dict(marker=marker, s=45, facecolors="none" if c["upsample"] or c["n_probe"] else color,
                             edgecolors=color)  # fmt: skip
                label = (
                    f"ours layer {c['layer']}"
                    + (" + upsample" if c["upsample"] else "")
                    + (" + gate" if c["gate"] else "")
                    + (" + in box" if c["in_box"] else "")
                    + (" + N/2 probe" if c["n_probe"] else "")
                    + (" + fine budget" if c["fine_samples"] else "")
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
            f"{run['method']} · {run['num_images']} report image(s) of {w}x{h} px · {run['device']} · {precision}"
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def print_tables(results: dict, console: Console) -> None:
    for run_result in results["runs"]:
        for line in header_lines(run_result):
            console.print(line, markup=False)
        table = Table(title=f"{run_result['method']} · {run_result['device']} · {results['machine']}")
        for col in _columns(run_result):
            table.add_column(col, justify="left" if col == "method" else "right")
        for name, row in run_result["methods"].items():
            table.add_row(*_cells(name, row, run_result))
        console.print(table)
        for precision, t in run_result["targets_by_precision"].items():
            for line in target_lines(t):
                console.print(f"  {precision}: {line}", markup=False)
        if len(run_result["precisions"]) > 1:
            for line in target_lines({"speed": run_result["targets"]["speed"]}):
                console.print(
                    f"  any precision vs base at {run_result['precisions'][0]}: {line}", markup=False
                )
