"""What a render costs, for any setting, without rendering it.

Two measures: the MLPs' multiply-adds per ray (:func:`macs_per_ray`: the Linear layers that run, the
probe through layers 0..l, the replaced network, later proposal stages and the final field), and a cost
model that predicts time (:func:`render_operations`, :func:`predicted_time_ratio`): every operation a
render spends time on, weighed by per-operation times measured on synthetic inputs. A density grid's
fill is a one-time cost, not per ray (:func:`fill_operations`).
"""

from __future__ import annotations

import bisect
import json
import math
import os
from collections import Counter
from pathlib import Path

import torch
from nerfstudio.field_components.encodings import HashEncoding, NeRFEncoding, SHEncoding


def macs_per_ray(
    model,
    layer: int | None,
    upsample: bool = False,
    rendered_fraction: float = 1.0,
    num_samples: int | None = None,
    probed_fraction: float = 1.0,
    sampler: str | None = None,
    fine_samples: int = 0,
    initial_samples: int = 0,
) -> float:
    """Multiply-adds of the MLPs per ray, for ``sampler`` (default: "stock" when ``layer`` is None,
    else "activation").

    estimate x ``probed_fraction`` + final pass x ``rendered_fraction`` (the share of pixels
    rendered: the gate, ``in_box`` and empty-ray skipping leave some out). The estimate: the
    replaced network on N samples (stock), nothing (grid: its fill is a one-time cost), or the probe
    through layers 0..l on ``num_samples`` (default N) samples of each pixel (with ``upsample`` on a
    quarter of the pixels with half the samples). Encodings, hash look-ups and compositing are not
    counted; ``initial_samples`` (grid, grid-all) changes only the fine pass (NeRF keeps the originals).
    """
    from nerfinternals.estimators import ESTIMATORS, RenderOptions

    sampler = sampler or ("stock" if layer is None else "activation")
    est = ESTIMATORS[sampler]
    options = RenderOptions(
        sampler=sampler,
        layer=layer or 0,
        upsample=upsample,
        n_probe=num_samples,
        fine_samples=fine_samples,
        initial_samples=initial_samples,
    )
    estimate = est.estimate_macs(model, options)
    fine = model.fine_macs_per_ray(fine_samples, not est.replaces_later_stages, initial_samples)
    return float(estimate * probed_fraction + fine * rendered_fraction)


def render_macs_per_ray(model, kwargs: dict, rendered_fraction: float) -> float:
    """:func:`macs_per_ray` of a ``render_sampled`` call (its keyword arguments) that rendered
    ``rendered_fraction`` of the pixels. The estimate runs on every pixel not ruled out before it: all
    of them with the gate or upsampling (probed first) and with skipping other than the hybrid's (it
    decides on the estimate); the in-box rays are then counted as all of them (at most)."""
    probed = _probed_fraction(kwargs, rendered_fraction)
    return model.macs_per_ray(
        kwargs["layer"],
        kwargs["upsample"],
        rendered_fraction,
        num_samples=kwargs["n_probe"],
        probed_fraction=probed,
        sampler=kwargs["sampler"],
        fine_samples=kwargs["fine_samples"],
        initial_samples=kwargs.get("initial_samples", 0),
    )


# ---- the cost model: predicted time, not only multiply-adds ------------------------------------------
# Besides the MLPs' multiply-adds a render spends time on hash-grid look-ups (nerfacto's field and stock
# proposal networks), positional encodings (integrated ones for Mip-NeRF), scene contraction, density-grid
# look-ups, the compositing of weights along each ray and inverse-transform sampling. The model counts each
# operation per ray and weighs it with a per-operation time measured once per machine on synthetic inputs
# of the sizes renders use (``python -m benchmarks.calibrate_cost``), never on the run it predicts.

OPERATIONS = ("hash", "encode", "ipe", "contract", "grid", "composite", "draw")
"""Operations besides the multiply-adds (keyed ("mac", in x out) by layer size): hash-grid corner x feature
look-ups, positional-encoding output values, integrated-encoding output values, positions mapped by scene
contraction, density-grid trilinear look-ups (keyed ("grid", resolution): a large grid misses the caches),
samples whose weights are composited, samples drawn by inverse-transform sampling."""

TABLES = ("mac", "grid")
"""Operations whose constant is a table by size (layer in x out, grid resolution), interpolated in log size."""


def network_operations(network: torch.nn.Module, samples: float) -> Counter:
    """Operations of ``samples`` evaluations of ``network``: every Linear, hash grid and positional encoding
    in it (a Mip-NeRF field's position encoding integrated)."""
    ops = _linear_operations([m for m in network.modules() if isinstance(m, torch.nn.Linear)], samples)
    ops.update(encoding_operations(network, samples))
    if getattr(network, "spatial_distortion", None) is not None:
        ops["contract"] += samples
    direction = getattr(network, "direction_encoding", None)
    if isinstance(direction, NeRFEncoding | SHEncoding):
        ops["encode"] += samples * direction.get_out_dim()
    return ops


def encoding_operations(network: torch.nn.Module, samples: float) -> Counter:
    """Operations of encoding ``samples`` positions for ``network``: its hash grids and positional encodings,
    not the direction's (a Mip-NeRF field's position encoding integrated)."""
    ops: Counter = Counter()
    integrated = getattr(network, "use_integrated_encoding", False)
    direction = getattr(network, "direction_encoding", None)
    for m in network.modules():
        if m is direction:
            continue
        if isinstance(m, HashEncoding):
            ops["hash"] += samples * m.num_levels * 8 * m.features_per_level
        elif isinstance(m, NeRFEncoding):
            ops["ipe" if integrated else "encode"] += samples * m.get_out_dim()
    return ops


def _linear_operations(linears, samples: float) -> Counter:
    ops: Counter = Counter()
    for m in linears:
        ops["mac", m.in_features * m.out_features] += samples * m.in_features * m.out_features
    return ops


def probe_operations(model, layer: int, samples: float) -> Counter:
    """Operations of the activation probe through layers 0..``layer`` on ``samples`` samples: the replaced
    network's position encoding and the truncated MLP."""
    ops = encoding_operations(model.replaced_network, samples)
    ops.update(_linear_operations(model.probe_mlp.layers[: layer + 1], samples))
    return ops


def _probed_fraction(kwargs: dict, rendered_fraction: float) -> float:
    """The share of pixels the estimate runs on: every pixel not ruled out before it, i.e. all of them
    with the gate or upsampling (probed first) and with skipping decided on the estimate itself."""
    from nerfinternals.estimators import ESTIMATORS

    decided_first = ESTIMATORS[kwargs["sampler"]].decides_empty_first
    if kwargs["gate"] or kwargs["upsample"] or (kwargs["skip_empty"] and not decided_first):
        return 1.0
    return rendered_fraction


def render_operations(model, kwargs: dict, rendered_fraction: float = 1.0) -> Counter:
    """Operations per ray of a ``render_sampled`` call (its keyword arguments) that rendered
    ``rendered_fraction`` of the pixels; the estimate (its estimator's
    :meth:`~nerfinternals.estimators.Estimator.estimate_operations`) is counted on the pixels
    :func:`render_macs_per_ray` counts it on."""
    from nerfinternals.estimators import ESTIMATORS, render_options

    options = render_options(kwargs)
    est = ESTIMATORS[options.sampler]
    initial = options.initial_samples  # nonzero only where it applies (the grid samplers)
    n = initial or model.num_probe_samples
    probed = _probed_fraction(kwargs, rendered_fraction)
    estimate = est.estimate_operations(model, options, n, rendered_fraction, probed)
    fine: Counter = Counter()
    for net, k in model.fine_stages(options.fine_samples, not est.replaces_later_stages, initial):
        fine.update(network_operations(net, k))
        fine.update(composite=k, draw=k)
    total = scaled(estimate, probed)
    total.update(scaled(fine, rendered_fraction))
    return total


def grid_operations(model, resolution: int, lookups: float) -> Counter:
    """``lookups`` density-grid look-ups: trilinear reads of a ``resolution``^3 grid, and the positions'
    contraction where the grid lives in contracted space."""
    ops = Counter({("grid", resolution): lookups})
    if getattr(model.replaced_network, "spatial_distortion", None) is not None:
        ops["contract"] += lookups
    return ops


def scaled(ops: Counter, factor: float) -> Counter:
    return Counter({k: v * factor for k, v in ops.items()})


def stock_kwargs() -> dict:
    """``render_sampled`` keyword arguments of the stock pipeline (stock sampler, the model's budget)."""
    return dict(
        sampler="stock",
        layer=0,
        upsample=False,
        gate=False,
        n_probe=None,
        skip_empty=False,
        fine_samples=0,
        initial_samples=0,
    )


def seconds(ops: Counter, constants: dict) -> float:
    """Predicted seconds of ``ops`` with per-operation ``constants`` (seconds per unit; the :data:`TABLES`
    by size, interpolated in log size: a multiply-add by layer in x out, a grid look-up by resolution)."""
    total = 0.0
    for key, count in ops.items():
        if isinstance(key, tuple):  # (operation, size)
            total += count * _interpolated(constants[key[0]], key[1])
        else:
            total += count * constants[key]
    return total


def _interpolated(table: dict | float, size: float) -> float:
    """A table's seconds per unit at ``size`` (linear in log size, clamped at its ends); a plain number
    is the same at every size."""
    if not isinstance(table, dict):
        return float(table)
    sizes = sorted((int(s), float(c)) for s, c in table.items())
    logs = [math.log(s) for s, _ in sizes]
    if len(sizes) == 1:
        return sizes[0][1]
    x = min(max(math.log(size), logs[0]), logs[-1])
    i = max(1, bisect.bisect_left(logs, x))
    f = (x - logs[i - 1]) / (logs[i] - logs[i - 1])
    return sizes[i - 1][1] * (1 - f) + sizes[i][1] * f


def predicted_time_ratio(
    model, kwargs: dict, rendered_fraction: float = 1.0, constants: dict | None = None
) -> float:
    """Predicted time of a setting per image, as a fraction of the stock pipeline's (the cost model)."""
    constants = constants or load_constants()
    ours = seconds(render_operations(model, kwargs, rendered_fraction), constants)
    return ours / seconds(render_operations(model, stock_kwargs()), constants)


def load_constants(path: Path | None = None) -> dict:
    """The per-operation constants: ``path``, else $NERFINTERNALS_COST_CONSTANTS, else the ones measured on
    the project's reference CPU (:data:`nerfinternals.cost_constants.CONSTANTS`)."""
    path = path or os.environ.get("NERFINTERNALS_COST_CONSTANTS")
    if not path:
        from nerfinternals.cost_constants import CONSTANTS

        return CONSTANTS
    constants = json.loads(Path(path).read_text())["constants"]
    missing = [k for k in ("mac", *OPERATIONS) if k not in constants]
    if missing:
        raise ValueError(
            f"{path} has no constant for {', '.join(missing)} (an older calibration): "
            "measure again with python -m benchmarks.calibrate_cost"
        )
    return constants


def fill_operations(model, kwargs: dict) -> Counter:
    """Operations of filling the density grid a setting uses (once per loaded model; none without a grid)."""
    from nerfinternals.estimators import ESTIMATORS, RenderOptions

    options = RenderOptions(**kwargs)
    source = ESTIMATORS[options.sampler].grid_source(model, options)
    if source is None:
        return Counter()
    net = model.replaced_network if source == "replaced" else model.field
    points = options.grid_resolution**3
    ops = encoding_operations(net, points)  # then the position MLP (the fill needs no colour)
    mlp = getattr(net, "mlp_base", net)
    ops.update(_linear_operations([m for m in mlp.modules() if isinstance(m, torch.nn.Linear)], points))
    return ops
