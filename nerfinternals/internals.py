"""The method of "Analyzing the Internals of Neural Radiance Fields", one function per step.

For a ray with N uniform samples t_1..t_N:

1. probe:     f_l(x_i) = post-activation output of MLP layer l (layers 0..l only),
              v_i = mean_h f_l(x_i)                               -> :func:`activation_feature`
2. transform: d_i = relu((mu - k s) - v_i) [squared], mu/s = mean/std of v along the ray
                                                                  -> :func:`density_from_activation`
3. estimate:  alpha-composite d on the samples, normalise per ray -> :func:`weights_from_density`
4. sample:    inverse transform sampling from those weights (nerfstudio's PDFSampler, in the models)

Low activation marks high density: minima of v along a ray sit at surfaces.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator

import torch
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.field_components.mlp import MLP
from nerfstudio.utils.math import intersect_aabb
from torch import Tensor, nn


def _layer_activation(mlp: MLP, layer: int) -> nn.Module | None:
    """The activation applied to the output of ``mlp.layers[layer]`` (as in ``MLP.pytorch_fwd``)."""
    return mlp.activation if layer < len(mlp.layers) - 1 else mlp.out_activation


def num_probe_layers(mlp: MLP) -> int:
    """Number of leading layers whose output passes through an activation (valid ``layer`` < this)."""
    if getattr(mlp, "tcnn_encoding", None) is not None:
        return 0
    count = 0
    for i in range(len(mlp.layers)):
        if _layer_activation(mlp, i) is None:
            break
        count += 1
    return count


def check_probe_layer(mlp: MLP, layer: int) -> None:
    """Raise ``ValueError`` unless ``layer`` names an activated layer of ``mlp``."""
    if getattr(mlp, "tcnn_encoding", None) is not None:
        raise ValueError(
            "the probed MLP is a fused tiny-cuda-nn network, which exposes no intermediate activations; "
            "train or evaluate with --pipeline.model.implementation torch"
        )
    n = num_probe_layers(mlp)
    if not 0 <= layer < n:
        raise ValueError(f"--layer {layer} is out of range for this model: valid layers are 0..{n - 1}")


def _forward_layers(mlp: MLP, x: Tensor, layer: int) -> Iterator[Tensor]:
    """Yield the post-activation outputs of ``mlp.layers[0..layer]`` one by one, evaluating those only.

    Reproduces ``MLP.pytorch_fwd`` exactly, including skip connections (``cat([input, x])``).
    The activation is applied here rather than hooked, since nerfstudio shares one ReLU module
    between MLPs.
    """
    check_probe_layer(mlp, layer)
    h = x
    for i in range(layer + 1):
        if i in mlp._skip_connections:
            h = torch.cat([x, h], dim=-1)
        h = mlp.layers[i](h)
        act = _layer_activation(mlp, i)
        if act is not None:
            h = act(h)
        yield h


def mlp_layer_outputs(mlp: MLP, x: Tensor, layer: int) -> list[Tensor]:
    """[f_0(x), ..., f_layer(x)]: every post-activation output up to ``layer`` (for analysis).

    Args:
        mlp: a torch-implemented nerfstudio MLP.
        x: encoded inputs, shape (..., in_dim).
        layer: 0-based index of the last layer to evaluate.

    Returns:
        one tensor per layer, each of shape (..., width of that layer).
    """
    return list(_forward_layers(mlp, x, layer))


def mlp_layer_output(mlp: MLP, x: Tensor, layer: int) -> Tensor:
    """f_l(x): post-activation output of ``mlp.layers[layer]``, evaluating layers 0..layer only.

    Shape (..., in_dim) -> (..., width of layer ``layer``).
    """
    # deque(maxlen=1) keeps only the newest output: earlier ones are freed as the layers run
    return deque(_forward_layers(mlp, x, layer), maxlen=1)[0]


def activation_feature(mlp: MLP, x: Tensor, layer: int) -> Tensor:
    """v = mean over hidden units of f_l(x), in float32 (also under autocast). Shape (..., in_dim) -> (...)."""
    return mlp_layer_output(mlp, x, layer).float().mean(dim=-1)


def resample_along_ray(v: Tensor, num_samples: int) -> Tensor:
    """v of n probe samples, linearly interpolated to ``num_samples`` samples of the same ray.

    Both sample sets split the same interval into equal bins (in the sampler's spacing); sample j of
    N sits at probe position (j + 1/2) n / N - 1/2, clamped to [0, n - 1]. Identity for N = n.
    Shape (R, n) -> (R, num_samples).
    """
    n = v.shape[-1]
    if n == num_samples:
        return v
    pos = ((torch.arange(num_samples, device=v.device, dtype=v.dtype) + 0.5) * n / num_samples - 0.5).clamp(
        0, n - 1
    )
    lo = pos.floor().long()
    hi = (lo + 1).clamp_max(n - 1)
    frac = pos - lo
    return v[..., lo] * (1 - frac) + v[..., hi] * frac


def restrict_to_box(rays: RayBundle, aabb: Tensor) -> Tensor:
    """Clip each ray's [near, far] to its segment inside the axis-aligned box ``aabb`` (2, 3), in place.

    Uniform samples then fall where a bounded scene can hold density. Returns the mask (R,) of rays
    that cross the box within [near, far]; the others keep an empty interval (near = far).
    """
    t_in, t_out = intersect_aabb(rays.origins, rays.directions, aabb.flatten(), invalid_value=0.0)
    nears = torch.maximum(rays.nears, t_in[..., None])
    fars = torch.minimum(rays.fars, t_out[..., None])
    hit = (fars > nears)[..., 0]
    rays.nears, rays.fars = nears, torch.maximum(fars, nears)
    return hit


def _std_threshold(k: float, square: bool) -> Callable[[Tensor], Tensor]:
    def transform(v: Tensor) -> Tensor:
        mu = v.mean(dim=-1, keepdim=True)
        s = v.std(dim=-1, keepdim=True) if v.shape[-1] > 1 else torch.zeros_like(mu)
        d = torch.relu((mu - k * s) - v)
        return d.square() if square else d

    return transform


TRANSFORMS: dict[str, Callable[[Tensor], Tensor]] = {
    "std": _std_threshold(1.0, square=False),
    "std_half": _std_threshold(0.5, square=False),
    "std_half_sq": _std_threshold(0.5, square=True),
}
"""The paper's three activation -> density transforms, applied along the last (sample) axis."""

FCT_NAMES: tuple[str, ...] = tuple(TRANSFORMS)
"""``--fct`` index -> transform name (0: std, 1: std_half, 2: std_half_sq)."""


def density_from_activation(v: Tensor, fct: str) -> Tensor:
    """d = TRANSFORMS[fct](v) along each ray. Shape (num_rays, num_samples) -> same."""
    if fct not in TRANSFORMS:
        raise ValueError(f"unknown transform {fct!r}; choose one of {', '.join(TRANSFORMS)}")
    return TRANSFORMS[fct](v)


def weights_from_density(ray_samples: RaySamples, density: Tensor) -> Tensor:
    """Alpha-composited weights of ``density`` on ``ray_samples``, normalised to sum 1 per ray.

    A ray whose estimate is zero everywhere (flat activations, empty space) gets uniform weights
    rather than 0/0.

    Args:
        ray_samples: samples of shape (num_rays, num_samples).
        density: the estimate d, shape (num_rays, num_samples) or (num_rays, num_samples, 1).

    Returns:
        weights, shape (num_rays, num_samples, 1), finite, each ray summing to 1.
    """
    if density.dim() == 2:
        density = density[..., None]
    return normalise_weights(ray_samples.get_weights(density))


def normalise_weights(weights: Tensor) -> Tensor:
    """Weights (R, S, 1) scaled to sum 1 per ray; non-finite entries count as 0, and a ray without any
    weight gets uniform weights rather than 0/0."""
    weights = torch.nan_to_num(weights, nan=0.0, posinf=0.0, neginf=0.0)
    total = weights.sum(dim=-2, keepdim=True)
    uniform = torch.full_like(weights, 1.0 / weights.shape[-2])
    return torch.where(total > 0, weights / total.clamp_min(torch.finfo(weights.dtype).tiny), uniform)


def activation_map(volume: Tensor) -> Tensor:
    """V_l: per-pixel mean of v over the ray's samples (the paper's Fig. 2). (H, W, N) -> (H, W)."""
    return volume.mean(dim=-1)


def gate_mask(act_map: Tensor, threshold: float | None = None) -> Tensor:
    """Pixels the fine pass runs for (the paper's Fig. 3): V_l < threshold, default the image mean μ(V_l).

    Low activation marks density, so pixels at or above the threshold are taken as empty. Returns a
    bool tensor of ``act_map``'s shape; ``threshold=math.inf`` admits every pixel.
    """
    if threshold is None:
        threshold = float(act_map.mean())
    return act_map < threshold


def upsample_nearest(volume: Tensor, size: tuple[int, int, int]) -> Tensor:
    """Nearest-neighbour upsampling of a probed (h, w, n) volume to (H, W, N).

    The probe ran on every 2nd pixel (rows/columns 0, 2, 4, ...) with n samples over the same
    [near, far]: pixel i takes probed pixel i // 2 (clamped), sample j takes the probed sample whose
    centre is nearest, floor((j + 1/2) n / N). Works for any H, W (square or not).
    """
    h, w, n = volume.shape
    H, W, N = size
    dev = volume.device
    rows = (torch.arange(H, device=dev) // 2).clamp_max(h - 1)
    cols = (torch.arange(W, device=dev) // 2).clamp_max(w - 1)
    samples = ((torch.arange(N, device=dev) + 0.5) * n / N).floor().long().clamp_max(n - 1)
    return volume[rows][:, cols][..., samples]


def linear_macs(module: nn.Module) -> int:
    """Multiply-adds of one evaluation of every ``nn.Linear`` in ``module`` (biases not counted)."""
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def probe_macs(mlp: MLP, layer: int) -> int:
    """Multiply-adds of the truncated forward through layers 0..layer of ``mlp``, per sample."""
    return sum(mlp.layers[i].in_features * mlp.layers[i].out_features for i in range(layer + 1))


def half(n: int) -> int:
    """Sample count of the upsampling probe: ceil(n / 2)."""
    return math.ceil(n / 2)
