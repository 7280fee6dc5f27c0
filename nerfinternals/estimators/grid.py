"""A post hoc density grid: the replaced network's density sampled once on a grid, looked up per sample."""

from __future__ import annotations

from nerfinternals.estimators.base import Estimator, grid_weights


class GridEstimator(Estimator):
    """The replaced network's density on a ``grid_resolution``^3 grid (:mod:`nerfinternals.grid`), filled on
    first use per loaded model, looked up trilinearly on the uniform samples."""

    name = "grid"
    any_initial_samples = True

    @classmethod
    def grid_source(cls, model, options):
        return "replaced"

    def prepare(self, camera_ray_bundle, mask, in_box):
        source = self.grid_source(self.model, self.options)
        self.grid = self.model.density_grid(self.options.grid_resolution, source)
        return mask

    def weights(self, rays, samples, rows):
        return grid_weights(self.model, samples, self.grid)
