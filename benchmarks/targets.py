"""The benchmark's targets and dominance rules, on rows of ``{name: {"kind", "t", "psnr", ...}}``.

Row kinds: ``base`` (stock), ``ours`` (any configuration the product renders: every sampler, budget and
option), ``alternative`` (what a user could do without the product). Time ratios and PSNR deltas are to
base.
"""

from __future__ import annotations

import statistics

TIME_VS_MACS_TOLERANCE = 0.03
BEST_PSNR_LOSS_DB = 1.0
GATE_TIME_RATIO = 0.50
GATE_PSNR_LOSS_DB = 1.5
WITHIN_DB = 0.1
"""The quality budget of the speed targets: the fastest configuration within this many dB of base."""

SAMPLER_FAMILIES = {"activation": ("activation", "hybrid"), "grid": ("grid",)}
"""The two training-free estimates the product offers: the paper's activations (alone, or with the grid
finding empty rays: hybrid) and the post hoc density grid."""


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


def fastest_within(rows: dict, within_db: float = WITHIN_DB) -> str | None:
    """The fastest of ``rows`` whose PSNR delta to base is at least ``-within_db`` (None: none is)."""
    ok = [n for n, r in rows.items() if r["psnr_delta"] >= -within_db]
    return min(ok, key=lambda n: rows[n]["t"]) if ok else None


def _speed(rows: dict, name: str | None) -> dict | None:
    if name is None:
        return None
    r = rows[name]
    return {
        "name": name,
        "speedup": 1.0 / r["time_ratio"],
        "time_ratio": r["time_ratio"],
        "psnr_delta": r["psnr_delta"],
    }


def speed_targets(rows: dict) -> dict:
    """The fastest configuration within :data:`WITHIN_DB` of base: of the product, of each estimate
    family (activation incl. hybrid; grid), and of the alternatives; and which family wins."""
    ours = {n: r for n, r in rows.items() if r["kind"] == "ours"}
    families = {
        family: {n: r for n, r in ours.items() if r["config"]["sampler"] in samplers}
        for family, samplers in SAMPLER_FAMILIES.items()
    }
    alternatives = {n: r for n, r in rows.items() if r["kind"] == "alternative"}
    result = {
        "within_db": WITHIN_DB,
        "product": _speed(ours, fastest_within(ours)),
        "alternatives": _speed(alternatives, fastest_within(alternatives)),
        **{family: _speed(r, fastest_within(r)) for family, r in families.items()},
    }
    present = {f: result[f] for f in SAMPLER_FAMILIES if result[f]}
    result["winner"] = max(present, key=lambda f: present[f]["speedup"]) if present else None
    return result


def targets(rows: dict) -> dict:
    """The benchmark's targets, each with the figures behind it and whether it is met."""
    ours = {n: r for n, r in rows.items() if r["kind"] == "ours"}
    activation = {n: r for n, r in ours.items() if r["config"]["sampler"] == "activation"}
    plain = {
        n: r
        for n, r in activation.items()
        if not r["config"]["gate"] and not r["config"]["fine_samples"] and not r["config"]["skip_empty"]
    }
    gated = {n: r for n, r in activation.items() if r["config"]["gate"]}
    references = {n: r for n, r in rows.items() if r["kind"] != "ours"}
    alternatives = {n: r for n, r in rows.items() if r["kind"] == "alternative"}
    result: dict = {"speed": speed_targets(rows)}
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
    if ours:
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
            "rule": "for each alternative, one configuration of the product (any sampler) with time <= its time "
            "and PSNR >= its PSNR",
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
