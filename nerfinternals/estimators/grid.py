"""A post hoc density grid: the replaced network's density sampled once on a grid, looked up per sample."""

from __future__ import annotations

from collections import Counter

from nerfinternals import cost
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

    description_name = "density grid"
    """How :meth:`description` calls it."""

    @classmethod
    def folder_name(cls, options):
        return f"{cls.name}{options.grid_resolution}" + (
            f"_n{options.initial_samples}" if options.initial_samples else ""
        )

    @classmethod
    def label(cls, options):
        text = f"{cls.name} {options.grid_resolution}^3"
        return text + (f" n{options.initial_samples}" if options.initial_samples else "")

    @classmethod
    def description(cls, options):
        more = f", {options.initial_samples} initial samples" if options.initial_samples else ""
        return f"{cls.description_name} sampler ({options.grid_resolution}^3{more})"

    @classmethod
    def estimate_macs(cls, model, options):
        return 0.0  # the grid's fill is a one-time cost (cost.fill_operations)

    @classmethod
    def estimate_operations(cls, model, options, n, rendered_fraction, probed):
        later = model.later_proposal_counts(options.fine_samples) if cls.replaces_later_stages else []
        ops = cost.grid_operations(model, options.grid_resolution, n + sum(later))
        ops.update(Counter(composite=n + sum(later), draw=sum(later)))
        return ops
