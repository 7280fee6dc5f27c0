"""Estimators: where along each ray the final pass should sample, from something cheaper than the
network they replace (the coarse field of NeRF / Mip-NeRF, nerfacto's proposal networks).

Each estimator is a small class in its own module (the shape of NerfAcc's ``estimators/``); the render
loop around them (:mod:`nerfinternals.estimators.loop`) is written once. Adding an estimate is one module
and one line in :data:`ESTIMATORS`; the CLIs and the viewer take the names from here. Each estimator
names itself (experiment folder, label, description) and states its cost (multiply-adds, operations);
one that does not fails saying which method it lacks (:class:`~nerfinternals.estimators.base.Estimator`).
"""

from __future__ import annotations

from nerfinternals.estimators import base
from nerfinternals.estimators.activation import ActivationEstimator
from nerfinternals.estimators.base import Estimator, RenderOptions, render_options
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


def experiment_name(options: RenderOptions) -> str:
    """An experiment's folder name (:func:`nerfinternals.estimators.base.experiment_name`)."""
    return base.experiment_name(options, ESTIMATORS)


def label(options: RenderOptions) -> str:
    """A short name of a configuration (:func:`nerfinternals.estimators.base.short_label`)."""
    return base.short_label(options, ESTIMATORS)


def description(options: RenderOptions) -> str:
    """One line naming the estimate of ``options`` (its estimator's :meth:`~Estimator.description`)."""
    est = ESTIMATORS[options.sampler]
    return est.description(options) + (", in box" if options.in_box and est.uses_box else "")


__all__ = [
    "ESTIMATORS",
    "Estimator",
    "RenderOptions",
    "description",
    "experiment_name",
    "label",
    "render_options",
]
