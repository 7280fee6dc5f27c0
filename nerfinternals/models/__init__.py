"""Thin subclasses of nerfstudio's NeRF, Mip-NeRF and nerfacto models (module paths are stable:
config.yml files store them)."""

import numpy as _np
import torch as _torch

from nerfinternals.models.nerf import (
    ActivationMipNerfModel,
    ActivationMipNerfModelConfig,
    ActivationNeRFModel,
    ActivationNeRFModelConfig,
)
from nerfinternals.models.nerfacto import ActivationNerfactoModel, ActivationNerfactoModelConfig

# nerfacto checkpoints hold numpy scalars (learning-rate scheduler state); torch >= 2.6 loads with
# weights_only=True by default and refuses them, so nerfstudio's eval_setup / ns-eval fail on them.
# Importing our models (which loading one of our config.yml files, or plugin discovery, does)
# allows exactly these types.
_torch.serialization.add_safe_globals(
    [_np.core.multiarray.scalar, _np.dtype, type(_np.dtype(_np.float64)), type(_np.dtype(_np.float32))]
)

__all__ = [
    "ActivationMipNerfModel",
    "ActivationMipNerfModelConfig",
    "ActivationNeRFModel",
    "ActivationNeRFModelConfig",
    "ActivationNerfactoModel",
    "ActivationNerfactoModelConfig",
]
