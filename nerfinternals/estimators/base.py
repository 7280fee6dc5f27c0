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

from collections import Counter
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from nerfstudio.cameras.rays import RayBundle, RaySamples
from torch import Tensor

from nerfinternals import kernels


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


RENDER_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RenderOptions))


def render_options(kwargs: dict) -> RenderOptions:
    """The :class:`RenderOptions` of ``render_sampled``'s keyword arguments (others ignored)."""
    return RenderOptions(**{k: v for k, v in kwargs.items() if k in RENDER_FIELDS})


class Estimator:
    """Weights on each ray's uniform samples, from something cheaper than the network they replace.

    Besides rendering, an estimator says what it is: its experiment folder name (:meth:`folder_name`),
    short label (:meth:`label`), one-line description (:meth:`description`) and cost (:meth:`estimate_macs`,
    :meth:`estimate_operations`); a new estimator that does not define them fails with a message saying
    so, never as another estimator.

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
    replaces_later_stages: ClassVar[bool] = False
    """Its :meth:`refine` replaces nerfacto's later proposal stages (none of them runs)."""
    decides_empty_first: ClassVar[bool] = False
    """With ``skip_empty``, which rays are empty is decided before the estimate runs (on the others only)."""

    # ---- what the estimator is: names and cost ------------------------------------------------------
    @classmethod
    def _undefined(cls, method: str) -> NotImplementedError:
        return NotImplementedError(
            f"estimator {cls.__name__} ({cls.name!r}) does not define {method}(): every estimator names "
            "itself and states its cost (nerfinternals/estimators/base.py)"
        )

    @classmethod
    def folder_name(cls, options: RenderOptions) -> str:
        """The estimate's part of an experiment's folder name (``gridR``, ``layer_LL_ups_U_fct_NAME``, ...);
        :func:`experiment_name` appends the options every estimator shares."""
        raise cls._undefined("folder_name")

    @classmethod
    def label(cls, options: RenderOptions) -> str:
        """The estimate's part of a short label (``grid 64^3``, ``l1 std_half``); see :func:`label`."""
        raise cls._undefined("label")

    @classmethod
    def description(cls, options: RenderOptions) -> str:
        """The estimate's part of a one-line description (``density grid sampler (64^3)``)."""
        raise cls._undefined("description")

    @classmethod
    def estimate_macs(cls, model, options: RenderOptions) -> float:
        """Multiply-adds per ray of the estimate itself (the final pass is counted apart)."""
        raise cls._undefined("estimate_macs")

    @classmethod
    def estimate_operations(
        cls, model, options: RenderOptions, n: int, rendered_fraction: float, probed: float
    ) -> Counter:
        """Operations per ray of the estimate on ``n`` uniform samples, their compositing included, per
        ray it runs on (``probed``, the share of pixels it runs on; ``rendered_fraction`` rendered)."""
        raise cls._undefined("estimate_operations")

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
    has no support); with the compiled kernels, the whole chain (positions, contraction, look-up, weights)
    through ``torch.compile``."""
    if kernels.active() == "compiled" and not torch.is_grad_enabled():
        return kernels.run_compiled(_grid_weights, model, samples, grid)
    return _grid_weights(model, samples, grid)


def _grid_weights(model, samples: RaySamples, grid) -> Tensor:
    unit, inside = model.grid_coordinates(samples.frustums.get_positions())
    density = grid.density(unit) * inside
    return torch.nan_to_num(samples.get_weights(density[..., None]), nan=0.0)


def experiment_name(options: RenderOptions, estimators: dict[str, type[Estimator]]) -> str:
    """An experiment's folder name: the estimator's :meth:`~Estimator.folder_name`, then ``_box``,
    ``_gate``, ``_kK`` and ``_skip`` where they apply."""
    est = estimators[options.sampler]
    return (
        est.folder_name(options)
        + ("_box" if options.in_box and est.uses_box else "")
        + ("_gate" if options.gate and est.probes else "")
        + (f"_k{options.fine_samples}" if options.fine_samples else "")
        + ("_skip" if options.skip_empty else "")
    )


def short_label(options: RenderOptions, estimators: dict[str, type[Estimator]]) -> str:
    """A short name of a configuration, e.g. ``l1 std_half n32 box``, ``grid 64^3 k64 skip``."""
    est = estimators[options.sampler]
    text = est.label(options)
    for on, tag, applies in (
        (options.in_box, "box", est.uses_box),
        (options.upsample, "ups", est.probes),
        (options.gate, "gate", est.probes),
    ):
        if on and applies:
            text += f" {tag}"
    if options.fine_samples:
        text += f" k{options.fine_samples}"
    if options.skip_empty:
        text += " skip"
    return text
