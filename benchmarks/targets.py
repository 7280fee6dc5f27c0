"""The benchmark's targets and dominance rules, on rows of ``{name: {"kind", "t", "psnr", ...}}``.

Row kinds: ``base`` (stock), ``noise`` (stock again: the noise floor, in no target), ``shipped`` (stock
through nerfstudio's own kernels: the second speed-up, in no target), ``ours`` (any
configuration the product renders: every sampler, budget and option), ``alternative`` (what a user could do
without the product). Time ratios and PSNR deltas are to base.

Every target that picks a configuration (the fastest within a budget, the best layer / transform, the
fastest gated one, the configuration ahead of an alternative) picks it on the rows of the *selection*
views and reports that configuration's figures from the rows of the *report* views
(:mod:`nerfinternals.views`); a pick that no longer meets its budget on the report views says so.
"""

from __future__ import annotations

import statistics

TIME_VS_MACS_TOLERANCE = 0.03
BEST_PSNR_LOSS_DB = 1.0
GATE_TIME_RATIO = 0.50
GATE_PSNR_LOSS_DB = 1.5
WITHIN_DB = 0.1
"""The quality budget of the speed targets: the fastest configuration within this many dB of base."""

SAMPLER_FAMILIES = {"activation": ("activation", "hybrid"), "grid": ("grid", "grid-all")}
"""The two training-free estimates the product offers: the paper's activations (alone, or with the grid
finding empty rays: hybrid) and the post hoc density grid (in place of the first proposal stage, or of
every one: grid-all)."""
COST_MODEL_TOLERANCE = 0.30
"""The cost model's predicted time ratio must be within this fraction of the measured one."""
SPEEDUP_GOALS = {"fp32": 3.0, "best precision": 5.0}
"""Speed-ups the product aims at on every run, within :data:`WITHIN_DB` of base (fp32; the best precision
against base at fp32)."""
STOCK_NERFACTO_GOALS = {"fp32": 5.0, "best precision": 5.0}
"""The same on stock nerfacto, whose hash-grid proposal networks cost the most to run."""


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
    """The fastest of ``rows`` whose PSNR delta to base is at least ``-within_db`` on every view
    (:data:`nerfinternals.views.SELECTION_RULE`; rows without per-view deltas: on their mean) (None: none is)."""
    ok = [n for n, r in rows.items() if r.get("psnr_delta_worst_view", r["psnr_delta"]) >= -within_db]
    return min(ok, key=lambda n: rows[n]["t"]) if ok else None


def _speed(rows: dict, selection: dict, name: str | None) -> dict | None:
    """The figures of ``name`` (chosen on ``selection``) on the report ``rows``."""
    if name is None:
        return None
    r, s = rows[name], selection[name]
    figures = {
        "name": name,
        "speedup": 1.0 / r["time_ratio"],
        "time_ratio": r["time_ratio"],
        **(
            {"speedup_over_shipped": 1.0 / r["time_ratio_over_shipped"]}
            if "time_ratio_over_shipped" in r
            else {}
        ),
        "psnr_delta": r["psnr_delta"],
        "within_on_report_views": r["psnr_delta"] >= -WITHIN_DB,
        "selection_time_ratio": s["time_ratio"],
        "selection_psnr_delta": s["psnr_delta"],
        "selection_psnr_delta_worst_view": s.get("psnr_delta_worst_view"),
    }
    if r.get("fill_seconds") is not None:
        figures.update({k: r.get(k) for k in ("fill_seconds", "speedup_one_image", "fill_pays_after_images")})
    return figures


def _of(rows: dict, names) -> dict:
    return {n: rows[n] for n in names}


def speed_targets(rows: dict, selection: dict | None = None) -> dict:
    """The fastest configuration within :data:`WITHIN_DB` of base: of the product, of each estimate
    family (activation incl. hybrid; grid), and of the alternatives; and which family wins. Chosen on
    ``selection`` (default: ``rows``), reported from ``rows``."""
    selection = rows if selection is None else selection
    ours = [n for n, r in rows.items() if r["kind"] == "ours"]
    families = {
        family: [n for n in ours if rows[n]["config"]["sampler"] in samplers]
        for family, samplers in SAMPLER_FAMILIES.items()
    }
    alternatives = [n for n, r in rows.items() if r["kind"] == "alternative"]

    def pick(names: list[str]) -> dict | None:
        return _speed(rows, selection, fastest_within(_of(selection, names)))

    result = {
        "within_db": WITHIN_DB,
        "product": pick(ours),
        "alternatives": pick(alternatives),
        **{family: pick(names) for family, names in families.items()},
    }
    present = {f: result[f] for f in SAMPLER_FAMILIES if result[f]}
    result["winner"] = max(present, key=lambda f: present[f]["speedup"]) if present else None
    return result


def cost_model(rows: dict) -> dict | None:
    """How far the cost model's predicted time ratio (``predicted_time_ratio``, fp32 rows) is from the
    measured one, on every row of ours and of the alternatives that has a prediction (None: no row has)."""
    errors = {
        n: r["predicted_time_ratio"] / r["time_ratio"] - 1.0
        for n, r in rows.items()
        if r["kind"] in ("ours", "alternative") and r.get("predicted_time_ratio") is not None
    }
    if not errors:
        return None
    outside = {n: e for n, e in errors.items() if abs(e) > COST_MODEL_TOLERANCE}
    return {
        "tolerance": COST_MODEL_TOLERANCE,
        "rows": len(errors),
        "median_abs_error": statistics.median(abs(e) for e in errors.values()),
        "max_abs_error": max(abs(e) for e in errors.values()),
        "outside": outside,
        "met": not outside,
    }


def speed_goals(by_precision: dict, overall: dict, stock_nerfacto: bool) -> dict:
    """Whether the fastest configuration of the product within :data:`WITHIN_DB` (picked on the selection
    views) reaches :data:`SPEEDUP_GOALS` (:data:`STOCK_NERFACTO_GOALS` on stock nerfacto), and by how much it
    misses. ``by_precision``: :func:`targets` per precision; ``overall``: against base at the first one."""
    goals = STOCK_NERFACTO_GOALS if stock_nerfacto else SPEEDUP_GOALS
    picks = {"fp32": by_precision.get("fp32", {}).get("speed", {}).get("product"),
             "best precision": overall["speed"]["product"]}  # fmt: skip
    result = {}
    for key, goal in goals.items():
        pick = picks[key]
        speedup = pick["speedup"] if pick else None
        within = bool(pick and pick["within_on_report_views"])
        result[key] = {
            "goal": goal,
            "pick": pick["name"] if pick else None,
            "speedup": speedup,
            "within_on_report_views": within,
            "short_by": None if speedup is None or speedup >= goal else goal - speedup,
            "met": speedup is not None and speedup >= goal and within,
        }
    return result


def targets(rows: dict, selection: dict | None = None) -> dict:
    """The benchmark's targets, each with the figures behind it and whether it is met. Picks are made on
    ``selection`` (rows of the selection views, same names; default: ``rows``), figures come from ``rows``."""
    selection = rows if selection is None else selection
    ours = {n: r for n, r in rows.items() if r["kind"] == "ours"}
    activation = {n: r for n, r in ours.items() if r["config"]["sampler"] == "activation"}
    plain = {
        n: r
        for n, r in activation.items()
        if not r["config"]["gate"] and not r["config"]["fine_samples"] and not r["config"]["skip_empty"]
    }
    gated = {n: r for n, r in activation.items() if r["config"]["gate"]}
    references = {n: r for n, r in rows.items() if r["kind"] in ("base", "alternative")}
    alternatives = {n: r for n, r in rows.items() if r["kind"] == "alternative"}
    result: dict = {"speed": speed_targets(rows, selection)}
    if (costs := cost_model(rows)) is not None:
        result["cost_model"] = costs
    if plain:
        gaps = {n: abs(r["time_ratio"] - r["macs_ratio"]) for n, r in plain.items()}
        result["time_ratio_matches_macs"] = {
            "tolerance": TIME_VS_MACS_TOLERANCE,
            "max_gap": max(gaps.values()),
            "median_gap": statistics.median(gaps.values()),
            "met_by": sorted(n for n, g in gaps.items() if g <= TIME_VS_MACS_TOLERANCE),
            "met": all(g <= TIME_VS_MACS_TOLERANCE for g in gaps.values()),
        }
        no_ups = [n for n, r in plain.items() if not r["config"]["upsample"]]
        best = max(no_ups or plain, key=lambda n: selection[n]["psnr"])
        result["best_within_1db"] = {
            "best": best,
            "psnr_delta": plain[best]["psnr_delta"],
            "selection_psnr_delta": selection[best]["psnr_delta"],
            "met": plain[best]["psnr_delta"] >= -BEST_PSNR_LOSS_DB,
        }
    if ours:  # a description of every configuration, no pick: on the report views
        undominated = sorted(n for n, r in ours.items() if not dominated_by(r, references))
        result["on_or_above_front"] = {
            "undominated": undominated,
            "dominated": {n: dominated_by(r, references) for n, r in ours.items() if n not in undominated},
            "met": bool(undominated),
        }
    if ours and alternatives:
        ahead, confirmed, shortfall = {}, {}, {}
        for alt in alternatives:
            a, a_sel = rows[alt], selection[alt]
            ahead[alt] = sorted(
                n for n in ours if selection[n]["t"] <= a_sel["t"] and selection[n]["psnr"] >= a_sel["psnr"]
            )
            confirmed[alt] = [
                n for n in ahead[alt] if rows[n]["t"] <= a["t"] and rows[n]["psnr"] >= a["psnr"]
            ]
            as_fast = [n for n in ours if selection[n]["t"] <= a_sel["t"]]
            if not confirmed[alt] and as_fast:  # the best of ours at its speed, and what it lacks
                best = max(as_fast, key=lambda n: selection[n]["psnr"])
                shortfall[alt] = {"best_as_fast": best, "psnr_short_db": a["psnr"] - ours[best]["psnr"]}
        result["ahead_of_every_alternative"] = {
            "rule": "for each alternative, one configuration of the product (any sampler) with time <= its time "
            "and PSNR >= its PSNR on the selection views that still is on the report views",
            "ahead_on_selection_views": ahead,
            "ahead": confirmed,
            "not_ahead_of": sorted(alt for alt, names in confirmed.items() if not names),
            "shortfall": shortfall,
            "met": all(confirmed.values()),
        }
    if gated:

        def ok(r: dict) -> bool:
            return r["time_ratio"] <= GATE_TIME_RATIO and r["psnr_delta"] >= -GATE_PSNR_LOSS_DB

        fastest = min(gated, key=lambda n: selection[n]["time_ratio"])
        met_by = sorted(n for n in gated if ok(selection[n]) and ok(rows[n]))
        result["gate"] = {
            "time_ratio_max": GATE_TIME_RATIO,
            "psnr_loss_max": GATE_PSNR_LOSS_DB,
            "fastest": fastest,
            "fastest_time_ratio": gated[fastest]["time_ratio"],
            "fastest_psnr_delta": gated[fastest]["psnr_delta"],
            "met_by": sorted(met_by),
            "met": bool(met_by),
        }
    return result
