"""activation-nerf and activation-mipnerf: nerfstudio's NeRF and Mip-NeRF, plus activation-informed rendering.

Training is stock. The state_dict keys equal stock ``vanilla-nerf`` / ``mipnerf`` keys at the
default MLP sizes, so checkpoints move between the stock and these models in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.field_components.mlp import MLP
from nerfstudio.fields.vanilla_nerf_field import NeRFField
from nerfstudio.model_components.ray_samplers import PDFSampler
from nerfstudio.model_components.scene_colliders import NearFarCollider
from nerfstudio.models.mipnerf import MipNerfModel
from nerfstudio.models.vanilla_nerf import NeRFModel, VanillaModelConfig
from torch import Tensor

from nerfinternals.data.ndc import ndc_collider_from_metadata
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

    @property
    def probe_mlp(self) -> MLP:
        return self.replaced_network.mlp_base

    def fine_stages(
        self, fine_samples: int = 0, proposal_stages: bool = True, initial_samples: int = 0
    ) -> list[tuple[NeRFField, int]]:
        c = self.config
        # NeRF's stock PDFSampler(include_original=True) merges the N + 1 uniform bin edges with I + 1 new
        # ones: N + I + 1 samples (193 for 64 + 128); Mip-NeRF's has I
        n = initial_samples or c.num_coarse_samples
        stock = c.num_importance_samples + (n + 1 if self.sampler_pdf.include_original else 0)
        return [(self.fine_field, fine_samples or stock)]

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

    def render_from_weights(
        self,
        ray_bundle: RayBundle,
        ray_samples: RaySamples,
        weights: Tensor,
        fine_samples: int = 0,
        proposal_stages: bool = True,
    ) -> dict:
        sampler = self.sampler_pdf
        if (
            fine_samples
        ):  # K importance samples, without the uniform originals (NeRF's stock sampler has them)
            sampler = PDFSampler(
                num_samples=fine_samples,
                train_stratified=sampler.train_stratified,
                single_jitter=sampler.single_jitter,
                include_original=False,
                histogram_padding=sampler.histogram_padding,
            ).train(sampler.training)
        return self._render_fine(self.fine_field, sampler(ray_bundle, ray_samples, weights))

    def stock_weights(self, ray_samples: RaySamples) -> Tensor:
        out = self.replaced_network.forward(ray_samples)
        return ray_samples.get_weights(out[FieldHeadNames.DENSITY])

    def _grid_box(self) -> Tensor:
        """The box the density grid covers: the scene box, or the NDC cube [-1, 1]^3 with the NDC collider."""
        if self.config.use_ndc_collider:
            return torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]], device=self.device)
        return self.scene_box.aabb.to(self.device).float()

    def grid_coordinates(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        lo, hi = self._grid_box()
        unit = (positions - lo) / (hi - lo)
        return unit, ((unit >= 0) & (unit <= 1)).all(dim=-1)

    def grid_density(self, unit: Tensor, resolution: int, source: str = "replaced") -> Tensor:
        lo, hi = self._grid_box()
        field = self.replaced_network
        positions = lo + unit * (hi - lo)
        if field.use_integrated_encoding:  # Mip-NeRF: a Gaussian the size of a grid cell
            covs = torch.diag_embed(self.grid_cell_variance(resolution).expand_as(positions))
            encoded = field.position_encoding(positions, covs=covs)
        else:
            encoded = field.position_encoding(positions)
        return field.field_output_density(field.mlp_base(encoded)).reshape(-1)

    GRID_CELL_VARIANCE: float = 4.0
    """Mip-NeRF's grid: each node is evaluated as a Gaussian (the integrated encoding) whose per-axis
    variance is this times the cell size squared: 4.0, a standard deviation of two cells. Chosen on
    selection views only by benchmarks/choose_cell_variance.py (lego Mip-NeRF, 2 val images at 50 px,
    grid 64^3, empty rays skipped; benchmarks/results/cell-variance): ΔPSNR to stock at the stock budget /
    64 fine samples: points (0) -0.48 / -1.81 dB, 0.25 +0.25 / +0.13, 1 +0.27 / +0.18, 2 +0.28 / +0.19,
    4 +0.27 / +0.23, 8 +0.03 / +0.06, 16 -0.09 / -0.13."""

    def grid_cell_variance(self, resolution: int) -> Tensor:
        lo, hi = self._grid_box()
        return ((hi - lo) / (resolution - 1)) ** 2 * self.GRID_CELL_VARIANCE


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
    def replaced_network(self) -> NeRFField:
        return self.field_coarse

    def probe_inputs(self, ray_samples: RaySamples) -> Tensor:
        return self.field_coarse.position_encoding(ray_samples.frustums.get_positions())


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
    def replaced_network(self) -> NeRFField:
        return self.field  # its coarse pass

    def probe_inputs(self, ray_samples: RaySamples) -> Tensor:
        gaussians = ray_samples.frustums.get_gaussian_blob()
        return self.field.position_encoding(gaussians.mean, covs=gaussians.cov)
