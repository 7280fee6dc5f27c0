"""Normalised device coordinates (NDC) for forward-facing scenes, as in the original NeRF.

NDC is the projective map of the reference camera (identity pose after ``llff-data``'s recentring,
looking along -z, image W x H, focal f, near plane n = 1)::

    (x, y, z) -> (-(2f / W) x / z,  -(2f / H) y / z,  1 + 2n / z)

It sends the near plane z = -n to z_ndc = -1 and z -> -inf to z_ndc = +1, and x_ndc, y_ndc are the
reference camera's image coordinates in [-1, 1]: the unbounded depth of a forward-facing scene
becomes a bounded cube, sampled linearly in disparity. A ray is first moved to start on the near
plane and then mapped (NeRF's ``ndc_rays``); its NDC image covers the segment from z_ndc = -1 to +1.

:class:`NDCCollider` replaces the models' near/far collider: it maps every ray into NDC with unit
directions and sets ``nears = 0``, ``fars = |d_ndc|`` (the NDC ray's full length), so sample t runs
over [near plane, infinity] and the sample spacing is NeRF's ``dists * |rays_d|``. The models'
fields then see NDC positions and NDC view directions.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.model_components.scene_colliders import SceneCollider
from torch import Tensor

NDC_KEYS = ("ndc_width", "ndc_height", "ndc_focal")
"""Dataparser metadata the collider needs (``llff-data`` provides them)."""


def ndc_rays(
    origins: Tensor, directions: Tensor, width: float, height: float, focal: float, near: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Rays (..., 3) in the reference camera's world frame -> NDC origins and directions (..., 3).

    The NDC point ``o_ndc + s d_ndc`` for s in [0, 1) is the image of the ray from where it crosses
    z = -near (s = 0) to infinity (s -> 1). Directions need not be unit length.
    """
    ax, ay = 2.0 * focal / width, 2.0 * focal / height
    t = -(near + origins[..., 2]) / directions[..., 2]
    o = origins + t[..., None] * directions
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = directions.unbind(-1)
    o_ndc = torch.stack([-ax * ox / oz, -ay * oy / oz, 1.0 + 2.0 * near / oz], dim=-1)
    d_ndc = torch.stack(
        [-ax * (dx / dz - ox / oz), -ay * (dy / dz - oy / oz), -2.0 * near / oz * torch.ones_like(dz)], dim=-1
    )
    return o_ndc, d_ndc


def world_to_ndc(points: Tensor, width: float, height: float, focal: float, near: float = 1.0) -> Tensor:
    """Points (..., 3) with z < 0 -> NDC (..., 3)."""
    x, y, z = points.unbind(-1)
    return torch.stack(
        [-(2.0 * focal / width) * x / z, -(2.0 * focal / height) * y / z, 1.0 + 2.0 * near / z], dim=-1
    )


def ndc_to_world(points: Tensor, width: float, height: float, focal: float, near: float = 1.0) -> Tensor:
    """Inverse of :func:`world_to_ndc` (z_ndc in [-1, 1))."""
    xn, yn, zn = points.unbind(-1)
    z = 2.0 * near / (zn - 1.0)
    return torch.stack([-xn * z * width / (2.0 * focal), -yn * z * height / (2.0 * focal), z], dim=-1)


class NDCCollider(SceneCollider):
    """Maps rays into NDC (unit directions) with nears = 0 and fars = the NDC ray's length.

    Unlike nerfstudio's colliders it always transforms its input: apply it once per ray bundle.
    ``pixel_area`` is scaled by the NDC x/y scale factors (2f/W)(2f/H), so a pixel's cone in NDC has
    about the pixel's NDC footprint (2/W x 2/H) halfway along the ray.
    """

    def __init__(self, width: float, height: float, focal: float, near_plane: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if min(width, height, focal, near_plane) <= 0:
            raise ValueError(
                f"NDC needs positive width, height, focal and near plane, got {width}, {height}, {focal}, {near_plane}"
            )
        self.width, self.height, self.focal, self.near_plane = width, height, focal, near_plane

    def forward(self, ray_bundle: RayBundle) -> RayBundle:
        return self.set_nears_and_fars(ray_bundle)

    def set_nears_and_fars(self, ray_bundle: RayBundle) -> RayBundle:
        origins, directions = ndc_rays(
            ray_bundle.origins, ray_bundle.directions, self.width, self.height, self.focal, self.near_plane
        )
        length = directions.norm(dim=-1, keepdim=True)
        area_scale = (2.0 * self.focal / self.width) * (2.0 * self.focal / self.height)
        return RayBundle(
            origins=origins,
            directions=directions / length,
            pixel_area=ray_bundle.pixel_area * area_scale,
            camera_indices=ray_bundle.camera_indices,
            nears=torch.zeros_like(length),
            fars=length,
            metadata=dict(ray_bundle.metadata),
            times=ray_bundle.times,
        )

    def extra_repr(self) -> str:
        return f"width={self.width}, height={self.height}, focal={self.focal}, near_plane={self.near_plane}"


def ndc_collider_from_metadata(metadata: Mapping | None) -> NDCCollider:
    """The NDC collider for a dataset whose dataparser put ``NDC_KEYS`` into its metadata."""
    metadata = metadata or {}
    missing = [k for k in NDC_KEYS if k not in metadata]
    if missing:
        raise ValueError(
            "use_ndc_collider needs the NDC reference camera from the dataparser "
            f"(metadata {', '.join(NDC_KEYS)}; missing {', '.join(missing)}): use the llff-data dataparser"
        )
    return NDCCollider(
        float(metadata["ndc_width"]), float(metadata["ndc_height"]), float(metadata["ndc_focal"])
    )
