"""NerfAcc's occupancy grid as a training-free alternative, set up as NerfAcc's users run it.

CUDA only: nerfacc's ray marching has no CPU kernels. Checked against the API of nerfacc 0.5.2
(``nerfacc.OccGridEstimator``):

- the grid: NerfAcc's default resolution (128^3, one level: a bounded scene's box), filled once, post hoc,
  from the density of the network activation-informed rendering replaces (the coarse network, or
  nerfacto's first proposal network), as NerfAcc fills it during training (occupancy = density x step
  size at jittered points of every cell, binarised at min(mean occupancy, NerfAcc's ``occ_thre`` 0.01));
- the march: through occupied cells only, in steps of the stock fine pass's mean spacing,
  (far - near) / (fine samples per ray) (the same sample density as stock; ``sampling``'s default 1e-3
  would be thousands of steps per ray), with NerfAcc's early ray termination: a ``sigma_fn`` evaluates
  the fine network's density on the marched samples and NerfAcc drops those behind transmittance
  ``early_stop_eps`` (its default 1e-4) or below opacity ``alpha_thre`` (its default 0);
- Mip-NeRF's cone: every marched sample is nerfstudio's conical frustum over [t_start, t_end] with the
  pixel's area, so Mip-NeRF's field encodes its cone covariance (integrated encoding) in the ``sigma_fn``
  and in the colour pass. The fill cannot: NerfAcc's ``occ_eval_fn`` receives points only, with no ray or
  pixel footprint, so the grid is filled with the density of points (zero covariance).

The fine network (NeRF's ``field_fine``, Mip-NeRF's ``field``, nerfacto's field) then renders the
surviving samples, composited with NerfAcc's volume rendering onto the model's background colour.
Multiply-adds per ray count the density pass over the marched samples and the full pass over the kept ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from nerfstudio.cameras.rays import Frustums, RayBundle, RaySamples
from nerfstudio.field_components.field_heads import FieldHeadNames
from torch import Tensor

from nerfinternals.internals import linear_macs

EARLY_STOP_EPS = 1e-4
"""NerfAcc's default early-termination threshold on the transmittance (``OccGridEstimator.sampling``)."""
ALPHA_THRE = 0.0
"""NerfAcc's default opacity below which a marched sample is dropped."""


def fine_field(model):
    """The network that renders colour after the replaced one."""
    return getattr(model, "fine_field", None) or model.field


def fine_samples_per_ray(model) -> int:
    """Samples per ray of the stock pipeline's last (colour) pass."""
    c = model.config
    if hasattr(c, "num_nerf_samples_per_ray"):
        return c.num_nerf_samples_per_ray
    include_original = getattr(model.sampler_pdf, "include_original", False)
    return c.num_importance_samples + (c.num_coarse_samples if include_original else 0)


def density_macs(field) -> int:
    """Multiply-adds of one density evaluation of ``field`` (its base MLP and density head)."""
    head = getattr(field, "field_output_density", None)
    return linear_macs(field.mlp_base) + (linear_macs(head) if isinstance(head, torch.nn.Module) else 0)


class NerfAccGrid:
    """A post hoc ``nerfacc.OccGridEstimator`` over the scene box and the renderer that marches it."""

    def __init__(
        self,
        model,
        density_fn: Callable[[Tensor], Tensor],
        resolution: int = 128,
        fills: int = 3,
        early_stop_eps: float = EARLY_STOP_EPS,
        alpha_thre: float = ALPHA_THRE,
    ) -> None:
        import nerfacc

        self.nerfacc = nerfacc
        self.model = model
        self.early_stop_eps, self.alpha_thre = early_stop_eps, alpha_thre
        collider = model.collider  # the near plane of evaluation: 0 unless the collider keeps it
        near = 0.0 if collider.reset_near_plane else float(collider.near_plane)
        self.step = (float(collider.far_plane) - near) / fine_samples_per_ray(model)
        aabb = model.scene_box.aabb.to(model.device).float().flatten()
        self.estimator = nerfacc.OccGridEstimator(roi_aabb=aabb, resolution=resolution, levels=1).to(
            model.device
        )

        def occupancy(x: Tensor) -> Tensor:  # density x step size, in chunks of 2^18 points
            return torch.cat([density_fn(chunk).reshape(-1, 1) for chunk in x.split(1 << 18)]) * self.step

        with torch.no_grad():
            for _ in range(fills):  # the max over several jittered points per cell
                self.estimator._update(step=0, occ_eval_fn=occupancy, ema_decay=1.0, warmup_steps=1)
        self.occupied_fraction = float(self.estimator.binaries.float().mean())

    def render(self, bundle: RayBundle) -> dict[str, Tensor]:
        """(H, W) outputs ``rgb``, ``accumulation``, ``depth``, ``samples`` (fine samples per ray) and ``marched``
        (samples the early-termination density pass evaluated per ray) of a camera's rays."""
        model, nerfacc = self.model, self.nerfacc
        field = fine_field(model)
        height, width = bundle.shape
        parts: dict[str, list[Tensor]] = {
            k: [] for k in ("rgb", "accumulation", "depth", "samples", "marched")
        }
        background = model.background_rgb()
        for _, _, rays in model._chunks(bundle):
            n = len(rays)
            o, d = rays.origins, rays.directions
            marched = torch.zeros(n, dtype=torch.long, device=o.device)

            def frustums(ray_indices: Tensor, t_starts: Tensor, t_ends: Tensor, rays=rays) -> RaySamples:
                """nerfstudio's conical frustums of the samples (Mip-NeRF's field encodes their covariance)."""
                return RaySamples(
                    frustums=Frustums(
                        origins=rays.origins[ray_indices],
                        directions=rays.directions[ray_indices],
                        starts=t_starts[:, None],
                        ends=t_ends[:, None],
                        pixel_area=rays.pixel_area[ray_indices],
                    ),
                    camera_indices=None if rays.camera_indices is None else rays.camera_indices[ray_indices],
                    deltas=(t_ends - t_starts)[:, None],
                )

            def sigma_fn(t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor, marched=marched) -> Tensor:
                marched.add_(torch.bincount(ray_indices.long(), minlength=marched.shape[0]))
                if not len(ray_indices):
                    return t_starts.new_zeros(0)
                density, _ = field.get_density(frustums(ray_indices.long(), t_starts, t_ends))
                return density[:, 0]

            ray_indices, t_starts, t_ends = self.estimator.sampling(
                o,
                d,
                sigma_fn=sigma_fn,
                t_min=rays.nears[:, 0],
                t_max=rays.fars[:, 0],
                render_step_size=self.step,
                early_stop_eps=self.early_stop_eps,
                alpha_thre=self.alpha_thre,
            )
            rgb = torch.zeros(n, 3, device=o.device)
            acc = torch.zeros(n, 1, device=o.device)
            depth = torch.zeros(n, 1, device=o.device)
            if len(ray_indices):
                out = field.forward(frustums(ray_indices.long(), t_starts, t_ends))
                sigmas = out[FieldHeadNames.DENSITY][:, 0]
                weights, _, _ = nerfacc.render_weight_from_density(
                    t_starts, t_ends, sigmas, ray_indices=ray_indices, n_rays=n
                )
                rgb = nerfacc.accumulate_along_rays(
                    weights, out[FieldHeadNames.RGB], ray_indices=ray_indices, n_rays=n
                )
                acc = nerfacc.accumulate_along_rays(weights, None, ray_indices=ray_indices, n_rays=n)
                depth = nerfacc.accumulate_along_rays(
                    weights, ((t_starts + t_ends) / 2)[:, None], ray_indices=ray_indices, n_rays=n
                )
            parts["samples"].append(torch.bincount(ray_indices.long(), minlength=n)[:, None])
            parts["marched"].append(marched[:, None])
            parts["rgb"].append(rgb + background.to(rgb) * (1.0 - acc))
            parts["accumulation"].append(acc)
            parts["depth"].append(depth)
        return {k: torch.cat(v).view(height, width, -1) for k, v in parts.items()}
