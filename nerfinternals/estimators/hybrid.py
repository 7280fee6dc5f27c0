"""The activation estimate places the samples; the density grid decides which rays are empty."""

from __future__ import annotations

from nerfinternals.estimators.activation import ActivationEstimator
from nerfinternals.estimators.base import grid_weights


class HybridEstimator(ActivationEstimator):
    """With ``skip_empty`` the grid's mass decides which rays are empty and the probe runs only on the
    others; without it, the activation estimate."""

    name = "hybrid"

    @classmethod
    def grid_source(cls, model, options):
        return "replaced" if options.skip_empty else None

    def prepare(self, camera_ray_bundle, mask, in_box):
        if self.options.skip_empty:
            self.grid = self.model.density_grid(self.options.grid_resolution)
        return super().prepare(camera_ray_bundle, mask, in_box)

    def mass(self, rays, samples, rows):
        weights = grid_weights(self.model, samples, self.grid)
        return weights.sum(dim=(-2, -1)), None  # the probe's weights come after the skip
