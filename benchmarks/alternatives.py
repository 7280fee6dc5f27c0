"""What a user could do instead, with the same trained model and no training: the benchmark's alternatives.

- ``coarse N/2``, ``coarse N/4``: the stock pipeline with fewer coarse (first proposal) samples;
- ``no-coarse (uniform)``: the final pass on uniform weights, no coarse network at all;
- ``stock kK``: the stock pipeline with K final-pass samples (nerfstudio's own samplers with that count);
- on CUDA, NerfAcc's occupancy grid filled post hoc (:mod:`benchmarks.occgrid`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor


@contextlib.contextmanager
def coarse_samples(model, n: int) -> Iterator[None]:
    """Temporarily give the stock pipeline ``n`` coarse (first proposal) samples per ray."""
    cfg = model.config
    if hasattr(model, "proposal_sampler"):
        sampler, attr, cfg_attr = (
            model.proposal_sampler,
            "num_proposal_samples_per_ray",
            "num_proposal_samples_per_ray",
        )
        new = (n, *getattr(sampler, attr)[1:])
    else:
        sampler, attr, cfg_attr = model.sampler_uniform, "num_samples", "num_coarse_samples"
        new = n
    old, old_cfg = getattr(sampler, attr), getattr(cfg, cfg_attr)
    setattr(sampler, attr, new)
    setattr(cfg, cfg_attr, new if isinstance(old_cfg, int) else tuple(new))
    try:
        yield
    finally:
        setattr(sampler, attr, old)
        setattr(cfg, cfg_attr, old_cfg)


def render_uniform(model, bundle, fine_samples: int = 0) -> dict:
    """The final pass (``render_from_weights``) on uniform weights over the N uniform samples of each ray:
    the same samples and counts as the product's samplers, no information at all."""
    height, width = bundle.shape
    parts: dict[str, list] = {}
    for _, _, rays in model._chunks(bundle):
        samples = model.probe_samples(rays, model.num_probe_samples)
        n = samples.shape[-1]
        weights = torch.full((*samples.shape, 1), 1.0 / n, device=samples.frustums.origins.device)
        for key, value in model.render_from_weights(rays, samples, weights, fine_samples).items():
            parts.setdefault(key, []).append(value)
    return {key: torch.cat(values).view(height, width, -1) for key, values in parts.items()}


def replaced_density_fn(model) -> Callable[[Tensor], Tensor]:
    """Density (..., 1) at world positions (..., 3) of the network the product's samplers replace."""
    if hasattr(model, "density_fns"):  # nerfacto: the first proposal network
        return model.density_fns[0]
    field = model.replaced_network

    def density(positions: Tensor) -> Tensor:
        if field.use_integrated_encoding:  # Mip-NeRF: a point is a Gaussian of zero covariance
            covs = torch.zeros(*positions.shape, 3, device=positions.device)
            encoded = field.position_encoding(positions, covs=covs)
        else:
            encoded = field.position_encoding(positions)
        return field.field_output_density(field.mlp_base(encoded))

    return density


def nerfacc_unavailable() -> str | None:
    """Why NerfAcc's CUDA ray marching cannot run here (None: it can).

    ``import nerfacc`` never loads its CUDA extension (NerfAcc 0.5 builds it on first use, and its
    sources fail to compile against CUDA 13's CCCL): load the extension itself and say why it fails.
    """
    try:
        import nerfacc  # noqa: F401
    except ImportError as err:
        return f"nerfacc is not importable ({err})"
    try:
        from nerfacc.cuda import _backend

        extension = getattr(_backend, "_C", None)
    except Exception as err:  # a failed build raises whatever the compiler wrapper raises
        return (
            f"nerfacc's CUDA extension does not load ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        )
    if extension is None:
        return "nerfacc's CUDA extension could not be built on this machine (see nerfacc's build log)"
    return None


def occgrid_not_run(model) -> str | None:
    """Why NerfAcc's occupancy grid cannot run for ``model`` here (None: it can)."""
    if model.device.type != "cuda":
        return "needs nerfacc's CUDA ray marching (no CUDA device here)"
    if model.probe_box() is None:
        return "the scene is unbounded (scene contraction or NDC): no box for the grid"
    return nerfacc_unavailable()
