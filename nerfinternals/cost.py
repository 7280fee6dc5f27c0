"""What a render costs: multiply-adds of the MLPs per ray, for any setting, without rendering it.

The count covers the Linear layers that run (the probe through layers 0..l, the replaced network, the
later proposal stages and the final field); a one-time grid fill is not per ray.
"""

from __future__ import annotations

from nerfinternals import internals


def macs_per_ray(
    model,
    layer: int | None,
    upsample: bool = False,
    rendered_fraction: float = 1.0,
    num_samples: int | None = None,
    probed_fraction: float = 1.0,
    sampler: str | None = None,
    fine_samples: int = 0,
) -> float:
    """Multiply-adds of the MLPs per ray, for ``sampler`` (default: "stock" when ``layer`` is None,
    else "activation").

    estimate x ``probed_fraction`` + final pass x ``rendered_fraction`` (the share of pixels
    rendered: the gate, ``in_box`` and empty-ray skipping leave some out). The estimate: the
    replaced network on N samples (stock), nothing (grid: its fill is a one-time cost), or the probe
    through layers 0..l on ``num_samples`` (default N) samples of each pixel (with ``upsample`` on a
    quarter of the pixels with half the samples). Encodings, hash look-ups and compositing are not
    counted.
    """
    sampler = sampler or ("stock" if layer is None else "activation")
    if sampler == "stock":
        estimate = float(model.skipped_macs_per_ray())
    elif sampler in ("grid", "grid-all"):
        estimate = 0.0
    else:
        n = num_samples or model.num_probe_samples
        estimate = internals.probe_macs(model.probe_mlp, layer) * (internals.half(n) / 4 if upsample else n)
    fine = model.fine_macs_per_ray(fine_samples, proposal_stages=sampler != "grid-all")
    return float(estimate * probed_fraction + fine * rendered_fraction)


def render_macs_per_ray(model, kwargs: dict, rendered_fraction: float) -> float:
    """:func:`macs_per_ray` of a ``render_sampled`` call (its keyword arguments) that rendered
    ``rendered_fraction`` of the pixels. The estimate runs on every pixel not ruled out before it: all
    of them with the gate or upsampling (probed first) and with skipping other than the hybrid's (it
    decides on the estimate); the in-box rays are then counted as all of them (at most)."""
    probed = rendered_fraction
    if kwargs["gate"] or kwargs["upsample"] or (kwargs["skip_empty"] and kwargs["sampler"] != "hybrid"):
        probed = 1.0
    return model.macs_per_ray(
        kwargs["layer"],
        kwargs["upsample"],
        rendered_fraction,
        num_samples=kwargs["n_probe"],
        probed_fraction=probed,
        sampler=kwargs["sampler"],
        fine_samples=kwargs["fine_samples"],
    )
