"""The density grid in place of every proposal stage of nerfacto (``grid-all``).

The first stage is the ``grid`` estimate on the initial samples, but from a grid filled with the field's
own density (the sharpest the model has); each later proposal stage draws its stock sample count
(scaled with the final budget, as the proposal networks' would be) from the previous stage's weights and
weighs the new samples with the same grid, so that no proposal network runs at render time. On models
with a single coarse stage (NeRF, Mip-NeRF) there are no later stages and the field's grid is the fine
network's, so ``grid-all`` is ``grid`` there: their grid is filled from the replaced (coarse) network.
"""

from __future__ import annotations

from nerfinternals import internals
from nerfinternals.estimators.base import grid_weights
from nerfinternals.estimators.grid import GridEstimator


class GridAllEstimator(GridEstimator):
    """``grid`` on the initial samples, then the grid again in place of each later proposal network."""

    name = "grid-all"

    @property
    def source(self) -> str:
        return "field" if self.model.later_proposal_counts(self.options.fine_samples) else "replaced"

    def refine(self, rays, samples, weights):
        counts = self.model.later_proposal_counts(self.options.fine_samples)
        pdf_sampler = getattr(self.model, "proposal_sampler", None)
        for num in counts:
            weights = internals.normalise_weights(weights)
            samples = pdf_sampler.pdf_sampler(rays, samples, weights, num_samples=num)
            weights = grid_weights(self.model, samples, self.grid)
        self.final = bool(counts)
        return samples, weights
