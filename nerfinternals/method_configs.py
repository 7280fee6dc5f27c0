"""The three methods registered with nerfstudio (entry points ``nerfstudio.method_configs``).

Training settings follow the paper's authors. Each model is a thin subclass of the stock one, so
training is stock nerfstudio; activation-informed rendering is used at evaluation
(``nerfinternals/eval.py``).
"""

from __future__ import annotations

from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig, RAdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from nerfinternals.models import (
    ActivationMipNerfModelConfig,
    ActivationNerfactoModelConfig,
    ActivationNeRFModelConfig,
)

# Live viewer and tensorboard; the run ends when training does (no blocking viewer loop).
_VIEWER = ViewerConfig(quit_on_train_completion=True)
_VIS = "viewer+tensorboard"


def _radam() -> dict:
    return {"optimizer": RAdamOptimizerConfig(lr=5e-4, eps=1e-08), "scheduler": None}


def _adam_decay(lr: float, lr_final: float, max_steps: int) -> dict:
    return {
        "optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15),
        "scheduler": ExponentialDecaySchedulerConfig(lr_final=lr_final, max_steps=max_steps),
    }


activation_nerf = MethodSpecification(
    config=TrainerConfig(
        method_name="activation-nerf",
        vis=_VIS,
        viewer=_VIEWER,
        pipeline=VanillaPipelineConfig(
            datamanager=VanillaDataManagerConfig(dataparser=BlenderDataParserConfig()),
            model=ActivationNeRFModelConfig(num_coarse_samples=64, num_importance_samples=128),
        ),
        optimizers={"fields": _radam(), "temporal_distortion": _radam()},
    ),
    description="Using Activations to infer Depth, NeRF.",
)

activation_mipnerf = MethodSpecification(
    config=TrainerConfig(
        method_name="activation-mipnerf",
        vis=_VIS,
        viewer=_VIEWER,
        pipeline=VanillaPipelineConfig(
            datamanager=VanillaDataManagerConfig(dataparser=BlenderDataParserConfig()),
            model=ActivationMipNerfModelConfig(
                loss_coefficients={"rgb_loss_coarse": 0.1, "rgb_loss_fine": 1.0},
                num_coarse_samples=128,
                num_importance_samples=128,
                eval_num_rays_per_chunk=1024,
            ),
        ),
        optimizers={"fields": _radam()},
    ),
    description="Using Activations to infer Depth, Mip-NeRF.",
)

activation_nerfacto = MethodSpecification(
    config=TrainerConfig(
        method_name="activation-nerfacto",
        steps_per_eval_batch=500,
        steps_per_save=2000,
        max_num_iterations=30000,
        mixed_precision=True,  # nerfstudio turns it off on CPU
        vis=_VIS,
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15, quit_on_train_completion=True),
        pipeline=VanillaPipelineConfig(
            datamanager=VanillaDataManagerConfig(
                dataparser=NerfstudioDataParserConfig(),
                train_num_rays_per_batch=4096,
                eval_num_rays_per_batch=4096,
            ),
            model=ActivationNerfactoModelConfig(
                eval_num_rays_per_chunk=1 << 15,
                average_init_density=0.01,
                num_proposal_samples_per_ray=(256, 96),
                num_nerf_samples_per_ray=48,
                camera_optimizer=CameraOptimizerConfig(mode="off"),
            ),
        ),
        optimizers={
            "proposal_networks": _adam_decay(1e-2, 1e-4, 200000),
            "fields": _adam_decay(1e-2, 1e-4, 200000),
            "camera_opt": _adam_decay(1e-3, 1e-4, 5000),
        },
    ),
    description="Using Activations to infer Depth, nerfacto.",
)
