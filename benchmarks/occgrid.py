"""NerfAcc's occupancy grid as a training-free alternative (CUDA only: nerfacc's ray marching has no CPU kernels).

``nerfacc.OccGridEstimator`` is filled once, post hoc, from the density of the network activation-informed
rendering replaces (the coarse network, or nerfacto's first proposal network), as NerfAcc fills it
during training (occupancy = density x step size at jittered points of every cell, thresholded at
min(mean, 0.01)). Rendering marches each ray in steps of the stock fine pass's mean spacing,
(far - near) / (fine samples per ray), through occupied cells only, evaluates the fine network
(NeRF's ``field_fine``, Mip-NeRF's ``field``, nerfacto's field) on those samples and composites them
with NerfAcc's volume rendering onto the model's background colour.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from nerfstudio.cameras.rays import Frustums, RayBundle, RaySamples
from nerfstudio.field_components.field_heads import FieldHeadNames
from torch import Tensor


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


class NerfAccGrid:
    """A post hoc ``nerfacc.OccGridEstimator`` over the scene box and the renderer that marches it."""

    def __init__(
        self, model, density_fn: Callable[[Tensor], Tensor], resolution: int = 128, fills: int = 3
    ) -> None:
        import nerfacc

        self.nerfacc = nerfacc
        self.model = model
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
        """(H, W) outputs ``rgb``, ``accumulation``, ``depth`` and ``samples`` (fine samples per ray) of a camera's rays."""
        model, nerfacc = self.model, self.nerfacc
        height, width = bundle.shape
        parts: dict[str, list[Tensor]] = {"rgb": [], "accumulation": [], "depth": [], "samples": []}
        background = model.background_rgb()
        for _, _, rays in model._chunks(bundle):
            n = len(rays)
            o, d = rays.origins, rays.directions
            ray_indices, t_starts, t_ends = self.estimator.sampling(
                o, d, t_min=rays.nears[:, 0], t_max=rays.fars[:, 0], render_step_size=self.step
            )
            rgb = torch.zeros(n, 3, device=o.device)
            acc = torch.zeros(n, 1, device=o.device)
            depth = torch.zeros(n, 1, device=o.device)
            if len(ray_indices):
                samples = RaySamples(
                    frustums=Frustums(
                        origins=o[ray_indices],
                        directions=d[ray_indices],
                        starts=t_starts[:, None],
                        ends=t_ends[:, None],
                        pixel_area=rays.pixel_area[ray_indices],
                    ),
                    camera_indices=None if rays.camera_indices is None else rays.camera_indices[ray_indices],
                    deltas=(t_ends - t_starts)[:, None],
                )
                out = fine_field(model).forward(samples)
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
            parts["rgb"].append(rgb + background.to(rgb) * (1.0 - acc))
            parts["accumulation"].append(acc)
            parts["depth"].append(depth)
        return {k: torch.cat(v).view(height, width, -1) for k, v in parts.items()}
