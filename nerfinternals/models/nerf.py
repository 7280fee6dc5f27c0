"""activation-nerf and activation-mipnerf: nerfstudio's NeRF and Mip-NeRF, plus activation-informed rendering.

Training is stock. The state_dict keys equal stock ``vanilla-nerf`` / ``mipnerf`` keys at the
default MLP sizes, so checkpoints move between the stock and these models in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.field_components.mlp import MLP
from nerfstudio.fields.vanilla_nerf_field import NeRFField
from nerfstudio.model_components.scene_colliders import NearFarCollider
from nerfstudio.models.mipnerf import MipNerfModel
from nerfstudio.models.vanilla_nerf import NeRFModel, VanillaModelConfig
from torch import Tensor

from nerfinternals.data.ndc import ndc_collider_from_metadata
from nerfinternals.internals import linear_macs
from nerfinternals.metrics import offline_lpips
from nerfinternals.models.base import ActivationRenderingMixin
from nerfinternals.models.inference import ActivationInferenceConfig


@dataclass
class ActivationNeRFModelConfig(VanillaModelConfig, ActivationInferenceConfig):
    """NeRF config; the MLP sizes default to nerfstudio's (and the paper's) NeRF."""

    _target: type = field(default_factory=lambda: ActivationNeRFModel)
    base_mlp_num_layers: int = 8
    """Number of layers of the position MLP (the probed one)."""
    base_mlp_layer_width: int = 256
    """Width of the position MLP."""
    head_mlp_num_layers: int = 2
    """Number of layers of the view-dependent colour head."""
    head_mlp_layer_width: int = 128
    """Width of the colour head."""
    skip_connections: tuple[int, ...] = (4,)
    """Layers of the position MLP that take the encoded input again."""
    use_ndc_collider: bool = False
    """Sample in NDC (forward-facing scenes; needs the llff-data dataparser): rays run from the near plane (1) to infinity, t in [0, |d_ndc|] (see nerfinternals.data.ndc)."""
    near_far_from_data: bool = True
    """Without NDC: when the dataparser provides scene bounds (llff-data: 0.9 x min bound, max bound), use them as near / far (in training and evaluation) instead of collider_params."""


@dataclass
class ActivationMipNerfModelConfig(ActivationNeRFModelConfig):
    """Mip-NeRF config (one field for both passes, integrated positional encoding)."""

    _target: type = field(default_factory=lambda: ActivationMipNerfModel)


class _NeRFFamily(ActivationRenderingMixin):
    """What NeRF and Mip-NeRF share: field construction from the config, the renderer."""

    config: ActivationNeRFModelConfig
    OUTPUT_ALIASES = {"rgb": "rgb_fine", "accumulation": "accumulation_fine", "depth": "depth_fine"}
    METRIC_PREFIX = "fine_"
    STOCK_ONLY_OUTPUT = "rgb_coarse"

    def populate_modules(self) -> None:
        with offline_lpips():
            super().populate_modules()
        metadata = self.kwargs.get("metadata") or {}
        if self.config.use_ndc_collider:
            self.collider = ndc_collider_from_metadata(metadata)
        elif self.config.near_far_from_data and "near_plane" in metadata and "far_plane" in metadata:
            # the data's bounds hold at eval too (as in NeRF): no reset of the near plane to 0
            self.collider = NearFarCollider(
                near_plane=float(metadata["near_plane"]),
                far_plane=float(metadata["far_plane"]),
                reset_near_plane=False,
            )

    def _field_like(self, stock: NeRFField) -> NeRFField:
        """A field with ``stock``'s encodings and this config's MLP sizes."""
        c = self.config
        return NeRFField(
            position_encoding=stock.position_encoding,
            direction_encoding=stock.direction_encoding,
            base_mlp_num_layers=c.base_mlp_num_layers,
            base_mlp_layer_width=c.base_mlp_layer_width,
            head_mlp_num_layers=c.head_mlp_num_layers,
            head_mlp_layer_width=c.head_mlp_layer_width,
            skip_connections=tuple(c.skip_connections),
            use_integrated_encoding=stock.use_integrated_encoding,
        )

    @property
    def num_probe_samples(self) -> int:
        return self.config.num_coarse_samples

    def probe_samples(self, ray_bundle: RayBundle, num_samples: int) -> RaySamples:
        return self.sampler_uniform(ray_bundle, num_samples=num_samples)

    def probe_box(self) -> Tensor | None:
        # NDC rays live in the NDC cube, not in the scene box
        return None if self.config.use_ndc_collider else self.scene_box.aabb

    def _render_fine(self, field: NeRFField, ray_samples: RaySamples) -> dict[str, Tensor]:
        out = field.forward(ray_samples)
        weights = ray_samples.get_weights(out[FieldHeadNames.DENSITY])
        return {
            "rgb": self.renderer_rgb(rgb=out[FieldHeadNames.RGB], weights=weights),
            "accumulation": self.renderer_accumulation(weights),
            "depth": self.renderer_depth(weights, ray_samples),
        }

    def render_from_weights(self, ray_bundle: RayBundle, ray_samples: RaySamples, weights: Tensor) -> dict:
        fine_samples = self.sampler_pdf(ray_bundle, ray_samples, weights)
        return self._render_fine(self.fine_field, fine_samples)


class ActivationNeRFModel(_NeRFFamily, NeRFModel):
    """NeRF: probe ``field_coarse``'s position MLP, render with ``field_fine``."""

    config: ActivationNeRFModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        self.field_coarse = self._field_like(self.field_coarse)
        self.field_fine = self._field_like(self.field_fine)

    @property
    def fine_field(self) -> NeRFField:
        return self.field_fine

    @property
    def probe_mlp(self) -> MLP:
        return self.field_coarse.mlp_base

    def probe_inputs(self, ray_samples: RaySamples) -> Tensor:
        return self.field_coarse.position_encoding(ray_samples.frustums.get_positions())

    def stock_macs_per_ray(self) -> int:
        c = self.config
        fine = c.num_coarse_samples + c.num_importance_samples  # include_original=True
        return c.num_coarse_samples * linear_macs(self.field_coarse) + fine * linear_macs(self.field_fine)

    def skipped_macs_per_ray(self) -> int:
        return self.config.num_coarse_samples * linear_macs(self.field_coarse)


class ActivationMipNerfModel(_NeRFFamily, MipNerfModel):
    """Mip-NeRF: probe the single field's position MLP on the integrated encoding of the uniform samples."""

    config: ActivationMipNerfModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        self.field = self._field_like(self.field)

    @property
    def fine_field(self) -> NeRFField:
        return self.field

    @property
    def probe_mlp(self) -> MLP:
        return self.field.mlp_base

    def probe_inputs(self, ray_samples: RaySamples) -> Tensor:
        gaussians = ray_samples.frustums.get_gaussian_blob()
        return self.field.position_encoding(gaussians.mean, covs=gaussians.cov)

    def stock_macs_per_ray(self) -> int:
        c = self.config
        return (c.num_coarse_samples + c.num_importance_samples) * linear_macs(
            self.field
        )  # include_original=False

    def skipped_macs_per_ray(self) -> int:
        return self.config.num_coarse_samples * linear_macs(self.field)
