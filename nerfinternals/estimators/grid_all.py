"""The density grid in place of every proposal stage of nerfacto (``grid-all``).

nerfacto's proposal sampler with each proposal network's density looked up in one grid instead: the
initial samples weighed by the grid, each later stage drawing its sample count (stock, or scaled with the
final budget as the proposal networks' would be) from the previous stage's weights and weighed by the grid
again, the field's samples drawn from the last; the weights pass unnormalised, as stock passes the
proposal networks'. The grid holds the field's own density (the sharpest the model has), so no proposal
network runs at render time. On models with a single coarse stage (NeRF, Mip-NeRF) there is no later
stage and ``grid-all`` is ``grid``: the coarse network's grid, normalised weights.
"""

from __future__ import annotations

from nerfinternals.estimators.base import grid_weights
from nerfinternals.estimators.grid import GridEstimator


class GridAllEstimator(GridEstimator):
    """``grid`` on the initial samples, then the grid again in place of each later proposal network."""

    name = "grid-all"
    description_name = "grid-all"
    replaces_later_stages = True

    def __init__(self, model, options) -> None:
        super().__init__(model, options)
        self.counts = model.later_proposal_counts(options.fine_samples)
        self.normalise = not self.counts  # nerfacto: as its proposal sampler, unnormalised
        self.final = bool(self.counts)

    @classmethod
    def grid_source(cls, model, options):
        return "field" if model.later_proposal_counts(options.fine_samples) else "replaced"

    def refine(self, rays, samples, weights):
        for num in self.counts:
            samples = self.model.proposal_sampler.pdf_sampler(rays, samples, weights, num_samples=num)
            weights = grid_weights(self.model, samples, self.grid)
        return samples, weights
