"""The stock estimate: the replaced network itself (coarse field, first proposal network)."""

from __future__ import annotations

from nerfinternals import cost
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

    @classmethod
    def folder_name(cls, options):
        return "stock"

    @classmethod
    def label(cls, options):
        return "stock"

    @classmethod
    def description(cls, options):
        return "stock sampler"

    @classmethod
    def estimate_macs(cls, model, options):
        return float(model.skipped_macs_per_ray())

    @classmethod
    def estimate_operations(cls, model, options, n, rendered_fraction, probed):
        ops = cost.network_operations(model.replaced_network, n)
        ops["composite"] += n
        return ops
