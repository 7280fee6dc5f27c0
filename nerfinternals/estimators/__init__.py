"""Estimators: where along each ray the final pass should sample, from something cheaper than the
network they replace (the coarse field of NeRF / Mip-NeRF, nerfacto's proposal networks).

Each estimator is a small class in its own module (the shape of NerfAcc's ``estimators/``); the render
loop around them (:mod:`nerfinternals.estimators.loop`) is written once. Adding an estimate is one module
and one line in :data:`ESTIMATORS`; the CLIs, the viewer and ``--auto`` take the names from here.
"""

from __future__ import annotations

from nerfinternals.estimators.activation import ActivationEstimator
from nerfinternals.estimators.base import Estimator, RenderOptions
from nerfinternals.estimators.grid import GridEstimator
from nerfinternals.estimators.grid_all import GridAllEstimator
from nerfinternals.estimators.hybrid import HybridEstimator
from nerfinternals.estimators.stock import StockEstimator

ESTIMATORS: dict[str, type[Estimator]] = {
    "stock": StockEstimator,
    "activation": ActivationEstimator,
    "grid": GridEstimator,
    "hybrid": HybridEstimator,
    "grid-all": GridAllEstimator,
}

__all__ = ["ESTIMATORS", "Estimator", "RenderOptions"]
