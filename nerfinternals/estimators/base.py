"""What every estimator is: one object with one job, and the options of a render.

An estimator is built per rendered image (:meth:`Estimator.prepare` holds whatever it computes once per
image: a density grid, a probed activation volume, the gate) and then, chunk by chunk, gives weights on
the replaced network's N uniform samples of each ray (:meth:`Estimator.weights`), the per-ray mass that
decides which rays are empty (:meth:`Estimator.mass`) and, where it replaces later proposal stages too,
the samples and weights the final pass draws its K samples from (:meth:`Estimator.refine`). The render
loop (:mod:`nerfinternals.estimators.loop`) applies budgets, skipping, precision and timing around all
of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from nerfstudio.cameras.rays import RayBundle, RaySamples
from torch import Tensor


@dataclass(frozen=True)
class RenderOptions:
    """The options of one render (``render_sampled``'s arguments, in order)."""

    sampler: str = "activation"
    """The estimate: a name of :data:`nerfinternals.estimators.ESTIMATORS`. "activation": layer ``layer``'s
    activations through ``fct`` (the paper); "grid": the replaced network's density on a
    ``grid_resolution``^3 grid; "grid-all": nerfacto's every proposal stage replaced by a grid of the
    field's density (elsewhere "grid"); "hybrid": the activation estimate, with the grid deciding which
    rays are empty (the probe runs only on the others); "stock": the replaced network itself."""
    layer: int = 1
    """Probed layer (0-based); activation and hybrid."""
    fct: str = "std_half"
    """Transform name, one of :data:`nerfinternals.internals.TRANSFORMS`."""
    upsample: bool = False
    """Probe every 2nd pixel per axis with N/2 samples and upsample the volume."""
    gate: bool = False
    """First compute the activation map V_l (per-pixel mean of v over the ray's samples; with ``upsample``,
    of the upsampled volume); pixels with V_l >= ``threshold`` skip importance sampling and the fine pass
    and take the background colour (accumulation and depth 0)."""
    threshold: float | None = None
    """The gate's threshold; None: the mean μ(V_l) over the image (with ``in_box``, over the pixels whose
    ray crosses the box). ``math.inf`` admits every pixel and reproduces the ungated render exactly."""
    n_probe: int | None = None
    """The probe evaluates this many uniform samples per ray (default: N, the replaced network's count);
    v is linearly interpolated along the ray onto the N samples."""
    in_box: bool = False
    """Place the N uniform samples (and the probe's) on the ray's segment inside the scene box; rays that
    miss it are not rendered (background), like gated pixels. Not for stock."""
    fine_samples: int = 0
    """K, the final pass's samples per ray (0: the model's own; see ``ActivationInferenceConfig.fine_samples``)."""
    skip_empty: bool = False
    """Rays whose estimate accumulates less than ``empty_threshold`` along the ray take the background
    colour without a final pass (0 skips none: the render is unchanged)."""
    empty_threshold: float = 1e-3
    grid_resolution: int = 64
    """Cells per axis of the density grid (grid, grid-all, hybrid)."""
    initial_samples: int = 0
    """N, the uniform samples per ray the estimate weighs (0: the replaced network's own count, nerfacto's
    256 say); grid and grid-all only, whose look-ups scale with N. The next stage draws its samples from
    them as it would from the replaced network's (NeRF's fine pass keeps them as its originals)."""


class Estimator:
    """Weights on each ray's uniform samples, from something cheaper than the network they replace.

    Args:
        model: the activation-* model (its hooks: ``probe_samples``, ``grid_coordinates``, ...).
        options: the render's options.
    """

    name: ClassVar[str] = ""
    stage: ClassVar[str] = "t_act"
    """Stage time the estimate counts to ("t_coarse" for the stock network itself)."""
    normalise: ClassVar[bool] = True
    """Normalise each ray's weights before importance sampling (the stock sampler passes them raw)."""
    uses_box: ClassVar[bool] = True
    """``in_box`` applies: uniform samples on the ray's segment inside the scene box."""
    probes: ClassVar[bool] = False
    """Runs the activation probe (``layer``, ``fct``, ``upsample`` and ``gate`` apply)."""
    any_initial_samples: ClassVar[bool] = False
    """``initial_samples`` applies: the estimate weighs any number of uniform samples per ray."""

    def __init__(self, model, options: RenderOptions) -> None:
        self.model = model
        self.options = options
        self.final = False
        """True when :meth:`refine` replaced every later proposal stage: the final pass samples the field
        from the returned weights directly."""
        self.outputs: dict[str, Tensor] = {}
        """Per-image outputs of the estimate (flattened (H * W, C)), e.g. the gate's activation map."""

    @property
    def num_samples(self) -> int:
        """N, the uniform samples per ray the estimate weighs."""
        return self.options.initial_samples or self.model.num_probe_samples

    @classmethod
    def check(cls, model, options: RenderOptions) -> None:
        """Raise ``ValueError`` (one line) unless ``options`` can render on ``model``."""

    @classmethod
    def grid_source(cls, model, options: RenderOptions) -> str | None:
        """The network that fills the density grid this estimate uses (see the models' ``density_grid``),
        None: no grid."""
        return None

    def prepare(self, camera_ray_bundle: RayBundle, mask: Tensor | None, in_box: bool) -> Tensor | None:
        """Once per (H, W) image, before its chunks: returns the (H, W) mask of pixels to render (``mask``,
        the rays crossing the scene box or None for all, narrowed further by the estimator if it gates)."""
        return mask

    def weights(self, rays: RayBundle, samples: RaySamples, rows: slice | Tensor) -> Tensor:
        """Unnormalised weights (R, N, 1) on ``samples``, the N uniform samples of ``rays`` (rows ``rows``
        of the image's flattened pixels)."""
        raise NotImplementedError

    def mass(
        self, rays: RayBundle, samples: RaySamples, rows: slice | Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Per-ray accumulated estimate (R,) that decides which rays are empty, and the weights if they
        were computed on the way (reused when the ray is kept)."""
        weights = self.weights(rays, samples, rows)
        return torch.nan_to_num(weights.sum(dim=(-2, -1)), nan=0.0), weights

    def refine(self, rays: RayBundle, samples: RaySamples, weights: Tensor) -> tuple[RaySamples, Tensor]:
        """Later stages of the estimate (set :attr:`final` when they replace every proposal stage)."""
        return samples, weights


def grid_weights(model, samples: RaySamples, grid) -> Tensor:
    """Unnormalised weights (R, S, 1) of a density grid's density on ``samples`` (0 where the grid's network
    has no support)."""
    unit, inside = model.grid_coordinates(samples.frustums.get_positions())
    density = grid.density(unit) * inside
    return torch.nan_to_num(samples.get_weights(density[..., None]), nan=0.0)
