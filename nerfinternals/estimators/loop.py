"""The render loop, written once for every estimator: estimate, skip empty rays, sample K, final pass."""

from __future__ import annotations

from collections import defaultdict

import torch
from nerfstudio.cameras.rays import RayBundle
from torch import Tensor

from nerfinternals import internals
from nerfinternals.estimators.base import Estimator
from nerfinternals.utils import StageTimer

EMPTY_OUTPUTS = {"rgb": 3, "accumulation": 1, "depth": 1}
"""Outputs (and channels) of pixels that are not rendered, and of a render that renders none."""


def render(
    model, camera_ray_bundle: RayBundle, estimator: Estimator, stage_times: bool = True
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """Render an (H, W) camera ray bundle with ``estimator`` (see the models' ``render_sampled``).

    Per chunk of rays: the N uniform samples of the replaced network, the estimate's weights on them, rays
    whose estimate holds less than ``empty_threshold`` skipped (``skip_empty``), the estimate's later
    stages, and the final pass drawing K samples from the weights. Returns the (H, W, C) outputs and the
    stage times ``{"t_act", "t_coarse", "t_fine"}`` in seconds.
    """
    o = estimator.options
    model._apply_near_plane()
    height, width = camera_ray_bundle.shape
    device = camera_ray_bundle.origins.device
    n = estimator.num_samples
    in_box = o.in_box and estimator.uses_box and model.probe_box() is not None
    timer = StageTimer(model.device, enabled=stage_times)
    mask = index = None
    with timer.stage(estimator.stage):
        if in_box:
            mask = box_mask(model, camera_ray_bundle)
        mask = estimator.prepare(camera_ray_bundle, mask, in_box)
        if mask is not None:
            index = mask.reshape(-1).nonzero().squeeze(-1)

    outputs: dict[str, list[Tensor]] = defaultdict(list)
    kept: list[Tensor] = []
    for start, end, rays in model._chunks(camera_ray_bundle, index, in_box):
        rows = slice(start, end) if index is None else index[start:end]
        with timer.stage(estimator.stage):
            samples = model.probe_samples(rays, n)
            weights = keep = None
            if o.skip_empty:
                mass, weights = estimator.mass(rays, samples, rows)
                keep = mass >= o.empty_threshold
                kept.append(keep.to(device))
                if bool(keep.all()):
                    keep = None
                else:
                    # new samples of the kept rays (same positions: the samplers are deterministic at eval),
                    # since samples carry a spacing function of all the chunk's rays
                    rays = rays[keep]
                    weights = None if weights is None else weights[keep]
                    samples = model.probe_samples(rays, n)
                    rows = torch.arange(start, end, device=keep.device)[keep] if index is None else rows[keep]
            if len(rays):
                if weights is None:
                    weights = estimator.weights(rays, samples, rows)
                samples, weights = estimator.refine(rays, samples, weights)
                if estimator.normalise:
                    weights = internals.normalise_weights(weights)
        with timer.stage("t_fine"):
            chunk_out = render_kept(model, rays, samples, weights, keep, o.fine_samples, not estimator.final)
        for name, value in chunk_out.items():
            outputs[name].append(value.to(device))
    images = assemble(model, outputs, (height, width), mask, device)
    if o.skip_empty:
        rendered = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.bool)
        if index is not None:
            full = torch.zeros(height * width, dtype=torch.bool, device=rendered.device)
            full[index.to(rendered.device)] = rendered
            rendered = full
        images["gate_mask"] = rendered.view(height, width, 1)
    for name, value in estimator.outputs.items():
        images[name] = value.view(height, width, -1).to(device)
    return images, {name: timer.totals[name] for name in ("t_act", "t_coarse", "t_fine")}


def render_kept(model, rays, samples, weights, keep: Tensor | None, fine_samples: int, proposal_stages: bool):
    """The final pass for the kept rays of a chunk (``keep`` None: all of them); the others take the
    background colour (``rgb``) and 0 (accumulation, depth)."""
    if keep is None:
        return model.render_from_weights(rays, samples, weights, fine_samples, proposal_stages)
    rendered = (
        model.render_from_weights(rays, samples, weights, fine_samples, proposal_stages) if len(rays) else {}
    )
    out = {}
    for name, channels in EMPTY_OUTPUTS.items():
        value = rendered.get(name)
        full = torch.zeros(len(keep), channels, device=model.device)
        if name == "rgb":
            full[:] = model.background_rgb().to(full)
        if value is not None:
            full = full.to(value.dtype)
            full[keep] = value.reshape(-1, channels)
        out[name] = full
    return out


def box_mask(model, camera_ray_bundle: RayBundle) -> Tensor | None:
    """(H, W) mask of the rays that cross the scene box within [near, far] (None: no box)."""
    box = model.probe_box()
    if box is None:
        return None
    hits = [
        internals.restrict_to_box(rays, box.to(model.device))
        for _, _, rays in model._chunks(camera_ray_bundle)
    ]
    return torch.cat(hits).view(camera_ray_bundle.shape)


def assemble(
    model, parts: dict[str, list[Tensor]], shape: tuple[int, int], mask: Tensor | None, device: torch.device
) -> dict[str, Tensor]:
    """(H, W, C) images from per-chunk outputs; with ``mask``, the chunks hold only the pixels where it is
    True and the others take the background colour (``rgb*``) or 0 (the rest)."""
    height, width = shape
    if mask is None:
        return {name: torch.cat(p).view(height, width, -1) for name, p in parts.items()}
    flat_mask = mask.reshape(-1).to(device)
    if not parts:  # nothing admitted: the outputs every model renders
        parts = {name: [torch.zeros(0, c, device=device)] for name, c in EMPTY_OUTPUTS.items()}
    images = {}
    for name, p in parts.items():
        values = torch.cat(p).flatten(0, -2)  # (pixels rendered, C)
        full = values.new_zeros(height * width, values.shape[-1])
        if name.startswith("rgb") and values.shape[-1] == 3:
            full[:] = model.background_rgb().to(full)
        full[flat_mask] = values
        images[name] = full.view(height, width, -1)
    images["gate_mask"] = mask.view(height, width, 1).to(device)
    return images
