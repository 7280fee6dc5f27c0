"""The activation estimate places the samples; the density grid decides which rays are empty."""

from __future__ import annotations

from nerfinternals import cost
from nerfinternals.estimators.activation import ActivationEstimator
from nerfinternals.estimators.base import grid_weights


class HybridEstimator(ActivationEstimator):
    """With ``skip_empty`` the grid's mass decides which rays are empty and the probe runs only on the
    others; without it, the activation estimate."""

    name = "hybrid"
    decides_empty_first = True

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

    @classmethod
    def folder_name(cls, options):
        return f"hybrid{options.grid_resolution}_{super().folder_name(options)}"

    @classmethod
    def label(cls, options):
        return f"hybrid {super().label(options)}"

    @classmethod
    def estimate_operations(cls, model, options, n, rendered_fraction, probed):
        ops = super().estimate_operations(model, options, n, rendered_fraction, probed)
        if not options.skip_empty:
            return ops
        # the grid decides on every ray, before the probe runs on the rendered ones
        share = 1.0 / max(probed, 1e-12)
        ops = cost.scaled(ops, rendered_fraction * share)
        ops.update(cost.scaled(cost.grid_operations(model, options.grid_resolution, n), share))
        ops.update(composite=n * share)
        return ops
