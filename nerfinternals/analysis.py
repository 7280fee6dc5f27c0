"""What the paper's analysis figures show, computed from a loaded model (the figures are drawn by
:mod:`nerfinternals.visualize`).

- Fig. 2, activation maps: V_l = per-pixel mean over the ray's uniform samples of v_l, for the
  coarse network (the probed one: NeRF's coarse field, Mip-NeRF's single field, nerfacto's first
  proposal network) or the fine network (NeRF's fine field, nerfacto's field MLP).
- Fig. 4, per-ray profiles: f_l along one ray (every hidden unit), v_l, the coarse network's
  density σ (nerfacto: the first proposal network's), d̂ for each transform.
- The paper's claim, quantified: over the pixels of an image, the distance along the ray between
  the argmax of the estimate ŵ (weights of d̂) and the argmax of the coarse weights (weights of σ)
  or the ground-truth depth, as median and 90th percentile, in scene units and as a share of the
  ray length (far - near of the sampled interval).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.field_components.mlp import MLP
from nerfstudio.models.mipnerf import MipNerfModel
from nerfstudio.models.nerfacto import NerfactoModel
from nerfstudio.models.vanilla_nerf import NeRFModel
from torch import Tensor

from nerfinternals import internals
from nerfinternals.estimators import loop
from nerfinternals.estimators.activation import gate
from nerfinternals.utils import StageTimer

NETWORKS = ("coarse", "fine")
"""Networks whose activation maps can be drawn (``--network both`` = all the model has)."""

OPAQUE = 0.5
"""A ray whose coarse weights sum to at least this counts as hitting something."""


# ---- which network, probed on what -------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """An MLP and the encoded inputs it sees for given samples."""

    label: str
    mlp: MLP
    inputs: Callable[[RaySamples], Tensor]


def available_networks(model) -> list[str]:
    """``coarse``, and ``fine`` where it is a separate network (Mip-NeRF has one for both passes)."""
    return ["coarse"] if isinstance(model, MipNerfModel) else ["coarse", "fine"]


def probes(model, names: list[str]) -> dict[str, Probe]:
    """The named networks of ``model`` as probes; ``ValueError`` for one it does not have."""
    out = {}
    for name in names:
        if name == "coarse":
            out[name] = Probe(_coarse_label(model), model.probe_mlp, model.probe_inputs)
        elif name == "fine" and isinstance(model, NeRFModel):
            fine = model.field_fine
            out[name] = Probe(
                "fine network (field_fine)",
                fine.mlp_base,
                lambda s, fine=fine: fine.position_encoding(s.frustums.get_positions()),
            )
        elif name == "fine" and isinstance(model, NerfactoModel):
            out[name] = Probe("fine network (nerfacto field)", _field_mlp(model.field), _field_inputs(model))
        elif name == "fine":
            raise ValueError(
                "Mip-NeRF has one network for both passes, no separate fine network: use --network coarse"
            )
        else:
            raise ValueError(f"unknown network {name!r}: choose from {', '.join(NETWORKS)}")
    return out


def _coarse_label(model) -> str:
    if isinstance(model, NerfactoModel):
        return "coarse network (proposal network 0)"
    if isinstance(model, MipNerfModel):
        return "coarse network (the one Mip-NeRF field)"
    return "coarse network (field_coarse)"


def _field_mlp(nerfacto_field) -> MLP:
    seq = getattr(nerfacto_field.mlp_base, "model", None)
    if getattr(nerfacto_field.mlp_base, "tcnn_encoding", None) is not None or not isinstance(
        seq, torch.nn.Sequential
    ):
        raise ValueError(
            "the nerfacto field's MLP is a fused tiny-cuda-nn network, which exposes no intermediate "
            "activations; train with --pipeline.model.implementation torch"
        )
    return seq[1]


def _field_inputs(model) -> Callable[[RaySamples], Tensor]:
    """Hash-grid encoding of the positions, normalised as ``NerfactoField.get_density`` does."""
    nerfacto_field = model.field

    def inputs(samples: RaySamples) -> Tensor:
        positions = samples.frustums.get_positions()
        if nerfacto_field.spatial_distortion is not None:
            positions = (nerfacto_field.spatial_distortion(positions) + 2.0) / 4.0
        else:
            positions = SceneBox.get_normalized_positions(positions, nerfacto_field.aabb)
        positions = positions * ((positions > 0.0) & (positions < 1.0)).all(dim=-1, keepdim=True)
        encoded = nerfacto_field.mlp_base.model[0](positions.reshape(-1, 3))
        return encoded.view(*positions.shape[:-1], -1).to(positions)

    return inputs


def coarse_density(model, samples: RaySamples) -> Tensor:
    """σ of the network the method replaces, on ``samples``: shape (R, S)."""
    if isinstance(model, NerfactoModel):
        return model.density_fns[0](samples.frustums.get_positions())[..., 0]
    field_ = model.field if isinstance(model, MipNerfModel) else model.field_coarse
    return field_.get_density(samples)[0][..., 0]


# ---- argmax distance ---------------------------------------------------------------------------
def sample_midpoints(samples: RaySamples) -> Tensor:
    """t of each sample's centre, (R, S)."""
    return ((samples.frustums.starts + samples.frustums.ends) / 2)[..., 0]


def ray_lengths(samples: RaySamples) -> Tensor:
    """Length of each ray's sampled interval (far - near), (R,)."""
    return samples.frustums.ends[:, -1, 0] - samples.frustums.starts[:, 0, 0]


def argmax_depth(t: Tensor, weights: Tensor) -> Tensor:
    """t at each ray's largest weight: t (R, S), weights (R, S) or (R, S, 1) -> (R,)."""
    if weights.dim() == t.dim() + 1:
        weights = weights[..., 0]
    return t.gather(-1, weights.argmax(dim=-1, keepdim=True))[..., 0]


def distance_summary(distance: Tensor, ray_length: Tensor, valid: Tensor | None = None) -> dict:
    """Median and 90th percentile of |distance| in scene units and as a share of the ray length.

    Args:
        distance: per ray, any shape; ray_length: same shape; valid: rays to include (default all).

    Returns:
        ``{"num_rays", "median", "p90", "median_share", "p90_share"}`` (None when no ray is valid).
    """
    d = distance.abs().reshape(-1).double().cpu()
    length = ray_length.reshape(-1).double().cpu()
    if valid is not None:
        keep = valid.reshape(-1).cpu()
        d, length = d[keep], length[keep]
    if d.numel() == 0:
        return {"num_rays": 0, "median": None, "p90": None, "median_share": None, "p90_share": None}
    share = (d / length).numpy()
    d = d.numpy()
    return {
        "num_rays": int(d.size),
        "median": float(np.median(d)),
        "p90": float(np.percentile(d, 90)),
        "median_share": float(np.median(share)),
        "p90_share": float(np.percentile(share, 90)),
    }


# ---- one image ---------------------------------------------------------------------------------
@dataclass
class ImageAnalysis:
    """Per-pixel results for one image, each (H, W)."""

    maps: dict[tuple[str, int], Tensor]
    """(network, layer) -> V_l."""
    t_estimate: dict[tuple[int, str], Tensor]
    """(layer, fct) -> t at the argmax of ŵ."""
    t_coarse: Tensor
    """t at the argmax of the coarse weights."""
    coarse_accumulation: Tensor
    """Sum of the coarse weights."""
    ray_length: Tensor

    def argmax_distances(self, gt_depth: Tensor | None = None) -> dict:
        """``{"layer_LL": {fct: {reference: distance_summary}}}``; references ``coarse`` (all pixels),
        ``coarse_opaque`` (coarse accumulation >= OPAQUE) and ``gt_depth`` (finite GT depth)."""
        refs = {
            "coarse": (self.t_coarse, None),
            "coarse_opaque": (self.t_coarse, self.coarse_accumulation >= OPAQUE),
        }
        if gt_depth is not None:
            gt = gt_depth.to(self.t_coarse)
            refs["gt_depth"] = (gt, torch.isfinite(gt))
        out: dict = defaultdict(dict)
        for (layer, fct), t_est in self.t_estimate.items():
            out[f"layer_{layer:02d}"][fct] = {
                name: distance_summary(t_est - ref, self.ray_length, valid)
                for name, (ref, valid) in refs.items()
            }
        return dict(out)


@torch.inference_mode()
def analyse_image(
    model,
    camera_ray_bundle: RayBundle,
    layers: list[int],
    fcts: list[str],
    networks: list[str],
    advance: Callable[[], object] | None = None,
) -> ImageAnalysis:
    """Activation maps of ``networks`` at ``layers`` and the argmax depths of ŵ (coarse network,
    each layer and transform; "coarse" must be in ``networks`` for them) and of the coarse weights,
    over the N uniform samples of every pixel.

    ``advance`` is called once per chunk of ``eval_num_rays_per_chunk`` rays (progress).
    """
    height, width = camera_ray_bundle.shape
    nets = probes(model, networks)
    n = model.num_probe_samples
    parts: dict[object, list[Tensor]] = defaultdict(list)
    last = max(layers)
    for _, _, rays in model._chunks(camera_ray_bundle):
        samples = model.probe_samples(rays, n)
        t = sample_midpoints(samples)
        for name in networks:
            outputs = internals.mlp_layer_outputs(nets[name].mlp, nets[name].inputs(samples), last)
            for layer in layers:
                v = outputs[layer].mean(dim=-1)
                parts["map", name, layer].append(internals.activation_map(v))
                if name == "coarse":
                    for fct in fcts:
                        parts["est", layer, fct].append(
                            argmax_depth(t, model.estimate_weights(samples, v, fct))
                        )
        weights = samples.get_weights(coarse_density(model, samples)[..., None])
        parts["coarse"].append(argmax_depth(t, weights))
        parts["acc"].append(weights.sum(dim=(-2, -1)))
        parts["length"].append(ray_lengths(samples))
        if advance is not None:
            advance()

    def image(key) -> Tensor:
        return torch.cat(parts[key]).view(height, width).cpu()

    return ImageAnalysis(
        maps={(name, layer): image(("map", name, layer)) for name in networks for layer in layers},
        t_estimate={(layer, fct): image(("est", layer, fct)) for layer in layers for fct in fcts},
        t_coarse=image("coarse"),
        coarse_accumulation=image("acc"),
        ray_length=image("length"),
    )


def num_chunks(model, camera_ray_bundle: RayBundle) -> int:
    """How many chunks :func:`analyse_image` processes (for a progress bar)."""
    step = model.config.eval_num_rays_per_chunk
    return -(-len(camera_ray_bundle.flatten()) // step)


# ---- one ray -----------------------------------------------------------------------------------
@dataclass
class RayProfile:
    """Everything Fig. 4 plots for one pixel, along its N uniform samples."""

    pixel: tuple[int, int]
    """(x, y) = (column, row)."""
    t: Tensor
    """(N,) sample centres."""
    features: dict[int, Tensor]
    """layer -> f_l, (N, hidden units)."""
    sigma: Tensor
    """(N,) coarse density."""
    coarse_weights: Tensor
    """(N,) weights of σ."""
    estimate: dict[tuple[int, str], Tensor] = field(default_factory=dict)
    """(layer, fct) -> d̂ (N,)."""
    estimate_weights: dict[tuple[int, str], Tensor] = field(default_factory=dict)
    """(layer, fct) -> ŵ (N,)."""
    gt_depth: float | None = None
    """GT depth of the pixel (``inf``: background); None without GT. In JSON both are null."""

    def to_json(self) -> dict:
        return {
            "pixel": {"x": self.pixel[0], "y": self.pixel[1]},
            "t": self.t.tolist(),
            "gt_depth": self.gt_depth if self.gt_depth is not None and math.isfinite(self.gt_depth) else None,
            "sigma_coarse": self.sigma.tolist(),
            "weights_coarse": self.coarse_weights.tolist(),
            "v": {f"layer_{layer:02d}": f.mean(dim=-1).tolist() for layer, f in self.features.items()},
            "d_hat": {f"layer_{layer:02d}/{fct}": d.tolist() for (layer, fct), d in self.estimate.items()},
            "w_hat": {
                f"layer_{layer:02d}/{fct}": w.tolist() for (layer, fct), w in self.estimate_weights.items()
            },
        }


@torch.inference_mode()
def ray_profiles(
    model,
    camera_ray_bundle: RayBundle,
    pixels: list[tuple[int, int]],
    layers: list[int],
    fcts: list[str],
    gt_depth: Tensor | None = None,
) -> list[RayProfile]:
    """Fig. 4's data for the given (x, y) pixels of an (H, W) bundle (coarse network)."""
    width = camera_ray_bundle.shape[1]
    index = torch.tensor([y * width + x for x, y in pixels], dtype=torch.long)
    mlp, inputs = model.probe_mlp, model.probe_inputs
    profiles: list[RayProfile] = []
    for start, end, rays in model._chunks(camera_ray_bundle, index):
        samples = model.probe_samples(rays, model.num_probe_samples)
        t = sample_midpoints(samples).cpu()
        outputs = internals.mlp_layer_outputs(mlp, inputs(samples), max(layers))
        sigma = coarse_density(model, samples)
        weights = samples.get_weights(sigma[..., None])[..., 0]
        estimates = {}
        for layer in layers:
            v = outputs[layer].mean(dim=-1)
            for fct in fcts:
                estimates[layer, fct] = (
                    model.estimate_density(samples, v, fct),
                    model.estimate_weights(samples, v, fct),
                )
        for i, (x, y) in enumerate(pixels[start:end]):
            profiles.append(
                RayProfile(
                    pixel=(x, y),
                    t=t[i],
                    features={layer: outputs[layer][i].cpu() for layer in layers},
                    sigma=sigma[i].cpu(),
                    coarse_weights=weights[i].cpu(),
                    estimate={k: d[i].cpu() for k, (d, _) in estimates.items()},
                    estimate_weights={k: w[i, :, 0].cpu() for k, (_, w) in estimates.items()},
                    gt_depth=None if gt_depth is None else float(gt_depth[y, x]),
                )
            )
    return profiles


def default_pixels(object_mask: Tensor, num_object: int = 3) -> list[tuple[int, int]]:
    """A few (x, y) pixels on the object (at quantiles of its pixels in row-major order) and one on
    the background (the middle one of those); the image centre when nothing counts as object."""
    height, width = object_mask.shape
    flat = object_mask.reshape(-1)
    on, off = flat.nonzero()[:, 0], (~flat).nonzero()[:, 0]
    chosen: list[int] = []
    if len(on):
        chosen += [int(on[int(q * (len(on) - 1))]) for q in np.linspace(0.25, 0.75, num_object)]
    else:
        chosen.append((height // 2) * width + width // 2)
    if len(off):
        chosen.append(int(off[len(off) // 2]))
    unique = list(dict.fromkeys(chosen))
    return [(i % width, i // width) for i in unique]


# ---- ground truth ------------------------------------------------------------------------------
def gt_depth_for(dataset, image_idx: int, shape: tuple[int, int]) -> Tensor | None:
    """Ground-truth depth beside the image (``<stem>_depth.npy``, distance along the unit ray, in
    the dataset's units, ``inf`` = background), in scene units; None if absent or of another size."""
    outputs = dataset._dataparser_outputs
    image = Path(outputs.image_filenames[image_idx])
    path = image.with_name(f"{image.stem}_depth.npy")
    if not path.is_file():
        return None
    depth = np.load(path)
    if depth.shape != tuple(shape):
        return None
    return torch.from_numpy(depth.astype(np.float32)) * float(outputs.dataparser_scale)


@torch.inference_mode()
def render_gated(
    model, camera_ray_bundle: RayBundle, layer: int, threshold: float | None = None
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """The stock coarse-to-fine pipeline, run only for pixels with V_l < ``threshold`` (the paper's Fig. 3).

    V_l is the activation map of the probed network (per-pixel mean of v over the N uniform
    samples); ``threshold=None`` is its image mean μ(V_l), ``math.inf`` admits every pixel and
    reproduces ``render_stock`` exactly. Other pixels take the background
    colour (``rgb*`` outputs) and 0 (every other output).

    Returns:
        the stock outputs (H, W, C) plus ``"gate_mask"`` (H, W, 1) bool and ``"activation_map"``
        (H, W, 1); times ``{"t_act", "t_render"}`` (probe + map, stock pipeline) in seconds.
    """
    internals.check_probe_layer(model.probe_mlp, layer)
    height, width = camera_ray_bundle.shape
    timer = StageTimer(model.device)
    with timer.stage("t_act"):
        act_map, mask = gate(model, camera_ray_bundle, layer, threshold)
        index = mask.reshape(-1).nonzero().squeeze(-1).to(camera_ray_bundle.origins.device)
    parts: dict[str, list[Tensor]] = {}
    with timer.stage("t_render"):
        if len(index):
            admitted = camera_ray_bundle.flatten()[index].reshape((len(index), 1))
            outputs = model.render_stock(admitted)
            parts = {name: [value] for name, value in outputs.items()}
    device = camera_ray_bundle.origins.device
    images = loop.assemble(model, parts, (height, width), mask, device)
    images["activation_map"] = act_map.view(height, width, 1).to(device)
    return images, {"t_act": timer.totals["t_act"], "t_render": timer.totals["t_render"]}
