"""The inference setting of the activation-* models: how a model renders whole cameras when it is not training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from nerfinternals.estimators import ESTIMATORS
from nerfinternals.kernels import Kernels

SAMPLERS: tuple[str, ...] = tuple(ESTIMATORS)
"""Values of ``inference_sampler``: the estimators' names."""


@dataclass
class ActivationInferenceConfig:
    """How the model renders whole cameras when it is not training (eval images, ns-render, the viewer,
    ns-eval). Fields of every activation-* model config; defaults keep stock behaviour."""

    inference_sampler: Literal[SAMPLERS] = "stock"
    """How the samples of the final pass are placed. "stock": the model's own coarse-to-fine / proposal
    sampling; "activation": the coarse (first proposal) network replaced by the estimate from its layer
    probe_layer (the paper); "grid": that network's density, sampled once on a grid_resolution^3 grid
    and looked up instead (a post hoc density grid); "grid-all": on nerfacto, every proposal stage replaced
    by a grid of the field's density (elsewhere the same as "grid"); "hybrid": the activation estimate
    places the samples, the grid decides which rays are empty (with skip_empty)."""
    probe_layer: int = 1
    """Probed layer, 0-based (1 = the paper's l=2)."""
    probe_fct: Literal["std", "std_half", "std_half_sq"] = "std_half"
    """Activation -> density transform."""
    probe_upsample: bool = False
    """Probe every 2nd pixel per axis with half the samples and upsample the activations."""
    probe_gate: bool = False
    """Render only pixels whose mean activation is below the image mean (the paper's Fig. 3)."""
    probe_samples: int = 0
    """Samples per ray the probe evaluates (0: as many as the replaced network); fewer are linearly
    interpolated along the ray onto the replaced network's samples."""
    probe_in_box: bool = False
    """Place the uniform samples on each ray's segment inside the scene box, and skip rays that miss
    it (bounded scenes: no effect with scene contraction or NDC)."""
    keep_near_plane: bool = False
    """Sample from the training near plane when not training as well (nerfstudio resets it to 0);
    applies to the stock sampler too."""
    fine_samples: int = 0
    """Samples of the final pass per ray (0: the model's own). NeRF: K importance samples without the
    uniform originals (stock: 64 + 128); Mip-NeRF: K (stock 128); nerfacto: K field samples (stock 48)
    and each later proposal stage scaled by K / 48 (stock 96). Applies to every sampler, stock too."""
    skip_empty: bool = False
    """Rays whose estimate holds no density get the background colour without a final pass: the
    estimate's accumulation along the ray below empty_threshold (stock: the coarse / first proposal
    network's; grid and hybrid: the grid's; activation: the estimate's, which is zero only when the
    estimate is zero everywhere)."""
    empty_threshold: float = 1e-3
    """skip_empty: a ray with accumulation below this is empty (0: no ray is skipped)."""
    grid_resolution: int = 64
    """Cells per axis of the density grid (grid, grid-all and hybrid samplers), filled once per loaded model."""
    initial_samples: int = 0
    """Uniform samples per ray the grid weighs (grid and grid-all samplers; 0: as many as the replaced
    network, nerfacto's 256 say): its look-ups scale with it, and the next stage draws from them."""
    precision: Literal["fp32", "tf32", "bf16", "fp16"] = "fp32"
    """Arithmetic of whole-camera renders (nerfinternals.precision); fp32 is exact."""
    kernels: Kernels = "fast"
    """Kernels of whole-camera renders (nerfinternals.kernels), every sampler's: "fast" scene contraction
    and torch hash encoding with the same bits as nerfstudio's in less time; "compiled" the hash encoding
    and the density grid's look-up chain through torch.compile (once per loaded model); "stock"
    nerfstudio's own, as shipped."""


INFERENCE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ActivationInferenceConfig))
INFERENCE_DEFAULTS: dict = dataclasses.asdict(ActivationInferenceConfig())
"""Every field of the inference setting at its default."""


MAX_GRID_RESOLUTION = 512
"""Largest density grid: 512^3 float32 cells are 512 MiB (and as many evaluations of the network)."""


def check_sampler(sampler: str) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: choose from {', '.join(SAMPLERS)}")


def check_fine_samples(k: int) -> None:
    if k < 0 or k == 1:
        raise ValueError(f"--fine-samples must be 0 (the model's own count) or at least 2, got {k}")


def check_grid_resolution(resolution: int) -> None:
    if resolution < 2:
        raise ValueError(f"--grid-resolution must be at least 2, got {resolution}")
    if resolution > MAX_GRID_RESOLUTION:
        gib = resolution**3 * 4 / 2**30
        raise ValueError(
            f"--grid-resolution {resolution} needs {gib:.1f} GiB for the grid alone (and {resolution}^3 evaluations "
            f"of the network): at most {MAX_GRID_RESOLUTION} ({MAX_GRID_RESOLUTION**3 * 4 / 2**30:.1f} GiB)"
        )


def check_initial_samples(n: int) -> None:
    if n < 0 or n == 1:
        raise ValueError(f"--initial-samples must be 0 (the replaced network's count) or at least 2, got {n}")


def check_empty_threshold(threshold: float) -> None:
    if not threshold >= 0:
        raise ValueError(f"--empty-threshold must be at least 0, got {threshold}")


def render_kwargs(settings: dict) -> dict:
    """An inference setting (its fields by name) as keyword arguments of the models' ``render_sampled``."""
    # initial_samples is the grid samplers' only: the others weigh the replaced network's own samples
    grid_samples = ESTIMATORS[settings["inference_sampler"]].any_initial_samples
    return {
        "sampler": settings["inference_sampler"],
        "layer": settings["probe_layer"],
        "fct": settings["probe_fct"],
        "upsample": settings["probe_upsample"],
        "gate": settings["probe_gate"],
        "n_probe": settings["probe_samples"] or None,
        "in_box": settings["probe_in_box"],
        "fine_samples": settings["fine_samples"],
        "skip_empty": settings["skip_empty"],
        "empty_threshold": settings["empty_threshold"],
        "grid_resolution": settings["grid_resolution"],
        "initial_samples": settings["initial_samples"] if grid_samples else 0,
    }
