"""The stock estimate: the replaced network itself (coarse field, first proposal network)."""

from __future__ import annotations

from nerfinternals.estimators.base import Estimator


class StockEstimator(Estimator):
    """The replaced network's own weights, passed unnormalised to the importance sampler as stock does;
    with the model's own budget and no skipping this is nerfstudio's pipeline."""

    name = "stock"
    stage = "t_coarse"
    normalise = False
    uses_box = False

    def weights(self, rays, samples, rows):
        return self.model.stock_weights(samples)
