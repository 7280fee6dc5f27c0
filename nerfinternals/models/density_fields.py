"""Proposal density fields whose MLP can be probed.

- :class:`MLPDensityField`: the Mip-NeRF 360 style proposal network of activation-nerfacto:
  positional encoding (10 frequencies) -> MLP (default 4 Linear layers of width 256, ReLU, no skip,
  the last one to 1 output) -> trunc_exp density. That MLP on 256 samples per ray is most of
  nerfacto's cost here, and what the activation probe replaces.
- :class:`ProbedHashMLPDensityField`: stock nerfacto's ``HashMLPDensityField`` (same state_dict),
  exposing the small MLP after its hash encoding.
"""

from __future__ import annotations

from nerfstudio.cameras.rays import RaySamples
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.field_components.activations import trunc_exp
from nerfstudio.field_components.encodings import NeRFEncoding
from nerfstudio.field_components.mlp import MLP
from nerfstudio.field_components.spatial_distortions import SpatialDistortion
from nerfstudio.fields.base_field import Field
from nerfstudio.fields.density_fields import HashMLPDensityField
from torch import Tensor, nn


class ProbedDensityField:
    """The position normalisation of nerfstudio's proposal fields, and the probe's view of it."""

    aabb: Tensor
    spatial_distortion: SpatialDistortion | None

    def normalized_positions(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Positions mapped to [0, 1]^3 (zeroed outside) and the mask of those inside, as stock."""
        if self.spatial_distortion is not None:
            positions = (self.spatial_distortion(positions) + 2.0) / 4.0
        else:
            positions = SceneBox.get_normalized_positions(positions, self.aabb)
        inside = ((positions > 0.0) & (positions < 1.0)).all(dim=-1)
        return positions * inside[..., None], inside

    def encode(self, positions01: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def probe_mlp(self) -> MLP:
        raise NotImplementedError

    def probe_inputs(self, positions: Tensor) -> Tensor:
        """Encoded positions as the probed MLP sees them, shape (..., in_dim)."""
        p, _ = self.normalized_positions(positions)
        return self.encode(p.view(-1, 3)).view(*p.shape[:-1], -1).to(p)

    def density_from_unit(self, unit: Tensor) -> Tensor:
        """Density (M,) at normalised positions (M, 3) in [0, 1]^3, as ``get_density`` computes it there."""
        raise NotImplementedError

    def support(self, positions: Tensor) -> Tensor:
        """1 where the field can hold density (inside its box), else 0; shape (...)."""
        return self.normalized_positions(positions)[1].to(positions)


class MLPDensityField(ProbedDensityField, Field):
    """Mip-NeRF 360 style MLP proposal network (see module docstring)."""

    def __init__(
        self,
        aabb: Tensor,
        num_layers: int = 4,
        layer_width: int = 256,
        spatial_distortion: SpatialDistortion | None = None,
        average_init_density: float = 1.0,
    ) -> None:
        super().__init__()
        self.register_buffer("aabb", aabb)
        self.spatial_distortion = spatial_distortion
        self.average_init_density = average_init_density
        self.encoding = NeRFEncoding(
            in_dim=3, num_frequencies=10, min_freq_exp=0.0, max_freq_exp=8.0, include_input=True
        )
        self.mlp_base = MLP(
            in_dim=self.encoding.get_out_dim(),
            num_layers=num_layers,
            layer_width=layer_width,
            out_dim=1,
            activation=nn.ReLU(),
            out_activation=None,
            implementation="torch",
        )

    def encode(self, positions01: Tensor) -> Tensor:
        return self.encoding(positions01)

    @property
    def probe_mlp(self) -> MLP:
        return self.mlp_base

    def density_from_unit(self, unit: Tensor) -> Tensor:
        return (self.average_init_density * trunc_exp(self.mlp_base(self.encode(unit)))).reshape(-1)

    def get_density(self, ray_samples: RaySamples) -> tuple[Tensor, None]:
        positions = ray_samples.frustums.get_positions()
        _, inside = self.normalized_positions(positions)
        raw = self.mlp_base(self.probe_inputs(positions))
        density = self.average_init_density * trunc_exp(raw) * inside[..., None]
        return density, None

    def get_outputs(self, ray_samples: RaySamples, density_embedding: Tensor | None = None) -> dict:
        return {}


class ProbedHashMLPDensityField(ProbedDensityField, HashMLPDensityField):
    """Stock ``HashMLPDensityField`` whose MLP (after the hash encoding) can be probed."""

    def encode(self, positions01: Tensor) -> Tensor:
        return self.encoding(positions01)

    def density_from_unit(self, unit: Tensor) -> Tensor:
        if self.use_linear:
            raw = self.linear(self.encoding(unit).to(unit))
        else:
            raw = self.mlp_base(unit).to(unit)
        return (self.average_init_density * trunc_exp(raw)).reshape(-1)

    @property
    def probe_mlp(self) -> MLP:
        if self.use_linear:
            raise ValueError("this proposal network is a single linear layer: it has no activations to probe")
        return self.mlp_base[1]
