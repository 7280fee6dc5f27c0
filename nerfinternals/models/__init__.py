"""Thin subclasses of nerfstudio's NeRF, Mip-NeRF and nerfacto models (module paths are stable:
config.yml files store them)."""

from nerfinternals.models.nerf import (
    ActivationMipNerfModel,
    ActivationMipNerfModelConfig,
    ActivationNeRFModel,
    ActivationNeRFModelConfig,
)
from nerfinternals.models.nerfacto import ActivationNerfactoModel, ActivationNerfactoModelConfig

__all__ = [
    "ActivationMipNerfModel",
    "ActivationMipNerfModelConfig",
    "ActivationNeRFModel",
    "ActivationNeRFModelConfig",
    "ActivationNerfactoModel",
    "ActivationNerfactoModelConfig",
]
