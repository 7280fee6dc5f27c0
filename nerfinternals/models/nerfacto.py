"""activation-nerfacto: nerfacto with MLP proposal networks, plus activation-informed rendering.

As in the paper ("nerfacto with a Mip-NeRF 360 proposal sampler"), the two proposal networks are
MLP density fields (:class:`~nerfinternals.models.density_fields.MLPDensityField`); the field is
stock nerfacto's, with the same state_dict keys. With ``proposal_field="hash"`` the model is stock
nerfacto (hash-grid proposal networks), which is how stock nerfacto checkpoints are evaluated.

Activation-informed rendering replaces the *first* proposal network's density (on its
``num_proposal_samples_per_ray[0]`` samples) by the estimate from layer l of that network's MLP; the
later proposal stages and the field run as stock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.field_components.activations import trunc_exp
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.field_components.mlp import MLP
from nerfstudio.models.nerfacto import NerfactoModel, NerfactoModelConfig
from torch import Tensor

from nerfinternals import kernels
from nerfinternals.data.ndc import ndc_collider_from_metadata
from nerfinternals.metrics import offline_lpips
from nerfinternals.models.base import ActivationRenderingMixin
from nerfinternals.models.density_fields import MLPDensityField, ProbedDensityField, ProbedHashMLPDensityField
from nerfinternals.models.inference import ActivationInferenceConfig


@dataclass
class ActivationNerfactoModelConfig(NerfactoModelConfig, ActivationInferenceConfig):
    """nerfacto config with MLP proposal networks by default."""

    _target: type = field(default_factory=lambda: ActivationNerfactoModel)
    proposal_field: Literal["mlp", "hash"] = "mlp"
    """Proposal network kind: "mlp" (Mip-NeRF 360 style, the paper's) or "hash" (stock nerfacto)."""
    proposal_mlp_num_layers: int = 4
    """Linear layers of each MLP proposal network (the last one outputs the density)."""
    proposal_mlp_layer_width: int = 256
    """Width of each MLP proposal network."""
    implementation: Literal["tcnn", "torch"] = "torch"
    """Implementation of the field's hash grid and MLPs; "torch" checkpoints load on any machine."""
    use_ndc_collider: bool = False
    """Sample in NDC (the authors' nerfacto NDC variant; needs the llff-data dataparser and the camera optimizer off): rays run from the near plane (1) to infinity, the fields' scene box is the NDC cube [-1, 1]^3, and near_plane / far_plane are not used."""


class ActivationNerfactoModel(ActivationRenderingMixin, NerfactoModel):
    """nerfacto whose first proposal network can be replaced by its own activations."""

    config: ActivationNerfactoModelConfig
    STOCK_ONLY_OUTPUT = "prop_depth_0"

    def populate_modules(self) -> None:
        c = self.config
        if c.use_ndc_collider:
            if c.camera_optimizer.mode != "off":
                raise ValueError(
                    "use_ndc_collider needs --pipeline.model.camera-optimizer.mode off "
                    "(pose refinement would act on NDC rays)"
                )
            self.scene_box = SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
        with offline_lpips():
            super().populate_modules()
        if c.use_ndc_collider:
            self.collider = ndc_collider_from_metadata(self.kwargs.get("metadata"))
        num_nets = 1 if c.use_same_proposal_network else c.num_proposal_iterations
        nets = []
        for i in range(num_nets):
            common = dict(
                spatial_distortion=self.field.spatial_distortion, average_init_density=c.average_init_density
            )
            if c.proposal_field == "mlp":
                net = MLPDensityField(
                    self.scene_box.aabb,
                    num_layers=c.proposal_mlp_num_layers,
                    layer_width=c.proposal_mlp_layer_width,
                    **common,
                )
            else:
                args = c.proposal_net_args_list[min(i, len(c.proposal_net_args_list) - 1)]
                net = ProbedHashMLPDensityField(
                    self.scene_box.aabb, **args, **common, implementation=c.implementation
                )
            nets.append(net)
        self.proposal_networks = torch.nn.ModuleList(nets)
        self.density_fns = [nets[min(i, num_nets - 1)].density_fn for i in range(c.num_proposal_iterations)]
        kernels.install(self)  # the proposal networks built here

    def _proposal_net(self, level: int) -> ProbedDensityField:
        return self.proposal_networks[min(level, len(self.proposal_networks) - 1)]

    @property
    def probe_mlp(self) -> MLP:
        return self._proposal_net(0).probe_mlp

    @property
    def num_probe_samples(self) -> int:
        return self.config.num_proposal_samples_per_ray[0]

    def probe_samples(self, ray_bundle: RayBundle, num_samples: int) -> RaySamples:
        return self.proposal_sampler.initial_sampler(ray_bundle, num_samples=num_samples)

    def probe_inputs(self, ray_samples: RaySamples) -> Tensor:
        return self._proposal_net(0).probe_inputs(ray_samples.frustums.get_positions())

    def probe_support(self, ray_samples: RaySamples) -> Tensor:
        return self._proposal_net(0).support(ray_samples.frustums.get_positions())

    def probe_box(self) -> Tensor | None:
        # with scene contraction (or NDC) every point of a ray maps into the fields' box
        return None if self.field.spatial_distortion is not None else self.scene_box.aabb

    def fine_counts(self, fine_samples: int = 0) -> tuple[list[int], int]:
        """Samples per ray of proposal levels 1..n-1 and of the field: stock, or with ``fine_samples`` K the
        field's K and each later proposal level's stock count scaled by K / (the field's stock count)."""
        c = self.config
        later = list(c.num_proposal_samples_per_ray[1 : c.num_proposal_iterations])
        if not fine_samples:
            return later, c.num_nerf_samples_per_ray
        scale = fine_samples / c.num_nerf_samples_per_ray
        return [max(2, round(k * scale)) for k in later], fine_samples

    def render_from_weights(
        self,
        ray_bundle: RayBundle,
        ray_samples: RaySamples,
        weights: Tensor,
        fine_samples: int = 0,
        proposal_stages: bool = True,
    ) -> dict:
        """Proposal levels 1..n and the field, as ``ProposalNetworkSampler`` and ``get_outputs`` at eval
        (without ``proposal_stages``: the field's samples drawn from ``weights`` directly)."""
        sampler = self.proposal_sampler
        later, field_samples = self.fine_counts(fine_samples)
        for level, num in enumerate(later if proposal_stages else [], start=1):
            ray_samples = sampler.pdf_sampler(ray_bundle, ray_samples, weights, num_samples=num)
            weights = ray_samples.get_weights(self.density_fns[level](ray_samples.frustums.get_positions()))
        ray_samples = sampler.pdf_sampler(ray_bundle, ray_samples, weights, num_samples=field_samples)
        out = self.field.forward(ray_samples)
        weights = ray_samples.get_weights(out[FieldHeadNames.DENSITY])
        return {
            "rgb": self.renderer_rgb(rgb=out[FieldHeadNames.RGB], weights=weights),
            "accumulation": self.renderer_accumulation(weights=weights),
            "depth": self.renderer_depth(weights=weights, ray_samples=ray_samples),
        }

    @property
    def replaced_network(self) -> torch.nn.Module:
        return self._proposal_net(0)

    def stock_weights(self, ray_samples: RaySamples) -> Tensor:
        return ray_samples.get_weights(self.density_fns[0](ray_samples.frustums.get_positions()))

    def grid_coordinates(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        # the first proposal network's own coordinates: its box, or the contracted ball of radius 2
        return self._proposal_net(0).normalized_positions(positions)

    def grid_density(self, unit: Tensor, resolution: int, source: str = "replaced") -> Tensor:
        if source == "replaced":
            return self._proposal_net(0).density_from_unit(unit)
        # the field's get_density at these (contracted or box-normalised) coordinates, as stock computes it
        inside = ((unit > 0.0) & (unit < 1.0)).all(dim=-1)
        raw = self.field.mlp_base((unit * inside[..., None]).view(-1, 3))[..., 0]
        return (self.field.average_init_density * trunc_exp(raw) * inside).reshape(-1)

    def fine_stages(
        self, fine_samples: int = 0, proposal_stages: bool = True, initial_samples: int = 0
    ) -> list[tuple[torch.nn.Module, int]]:
        later, field_samples = self.fine_counts(fine_samples)
        later = later if proposal_stages else []
        return [
            *((self._proposal_net(level), k) for level, k in enumerate(later, start=1)),
            (self.field, field_samples),
        ]
