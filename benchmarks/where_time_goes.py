"""Where a render's time goes: wall time per part of the pipeline, measured, each second counted once.

:func:`profile` renders with the model's parts wrapped by a clock that charges every second to the
innermost part running (a sampler calling a proposal network charges the network's time to the network
and only its own to sampling):

- ``estimate``: the product's estimator (activation probe, density grid look-ups, the gate);
- ``replaced network``: the network the product replaces, where it runs (stock's coarse network / first
  proposal network);
- ``later proposal networks``: nerfacto's proposal networks after the first;
- ``field``: the final field (NeRF's fine network, nerfacto's field; Mip-NeRF's one network, both passes);
- ``sampling``: nerfstudio's samplers (uniform, inverse transform, the proposal sampler's own work);
- ``other``: the rest (compositing, renderers, colliders, chunking, outputs).

The wrapping costs a clock read per call (and, on CUDA, a synchronisation): profiles are separate, untimed
renders, never the timed ones of the benchmark.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import torch
from nerfstudio.fields.base_field import Field
from nerfstudio.model_components.ray_samplers import Sampler

from nerfinternals.utils import synchronize

PARTS = ("estimate", "replaced network", "later proposal networks", "field", "sampling", "other")
ESTIMATOR_METHODS = ("prepare", "weights", "mass", "refine")


class PartClock:
    """Exclusive wall time per part: the clock runs for the innermost wrapped call."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[str] = []
        self._current = "other"
        self._since = 0.0

    def _switch(self, part: str) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        self.totals[self._current] += now - self._since
        self._current, self._since = part, now

    def start(self) -> None:
        synchronize(self.device)
        self._current, self._since = "other", time.perf_counter()

    def stop(self) -> None:
        self._switch("other")

    def wrap(self, method: Callable, part: str) -> Callable:
        @functools.wraps(method)
        def timed(*args, **kwargs):
            self._stack.append(self._current)
            self._switch(part)
            try:
                return method(*args, **kwargs)
            finally:
                self._switch(self._stack.pop())

        return timed


def _field_part(model, field: Field) -> str:
    replaced = getattr(model, "replaced_network", None)
    final = getattr(model, "field", None) or getattr(model, "field_fine", None)
    if field is final:
        return "field"
    if field is replaced:
        return "replaced network"
    return "later proposal networks"


def _instrument(model, clock: PartClock) -> list[tuple[object, str]]:
    """Wrap the model's fields, samplers and estimator factory; returns (object, attribute) to undo."""
    patched = []

    def patch(obj, name: str, part: str) -> None:
        object.__setattr__(obj, name, clock.wrap(getattr(obj, name), part))
        patched.append((obj, name))

    for module in model.modules():
        if isinstance(module, Field):
            part = _field_part(model, module)
            for name in ("get_density", "get_outputs"):
                patch(module, name, part)
        elif isinstance(module, Sampler):
            patch(module, "generate_ray_samples", "sampling")
    if hasattr(model, "estimator"):
        make = model.estimator

        def estimator(options):
            est = make(options)
            for name in ESTIMATOR_METHODS:
                object.__setattr__(est, name, clock.wrap(getattr(est, name), "estimate"))
            return est

        object.__setattr__(model, "estimator", estimator)
        patched.append((model, "estimator"))
    return patched


def profile(model, render: Callable[[], dict], repeats: int = 3) -> tuple[dict[str, float], dict]:
    """Median seconds per part (:data:`PARTS`, plus ``total``) over ``repeats`` calls of ``render`` (after one
    untimed call), and the outputs of the last call."""
    clock = PartClock(model.device)
    patched = _instrument(model, clock)
    runs: list[dict[str, float]] = []
    try:
        outputs = render()
        for _ in range(repeats):
            clock.totals = defaultdict(float)
            clock.start()
            outputs = render()
            clock.stop()
            runs.append({part: clock.totals.get(part, 0.0) for part in PARTS})
    finally:
        for obj, name in patched:
            object.__delattr__(obj, name)
    parts = {part: statistics.median(r[part] for r in runs) for part in PARTS}
    parts["total"] = statistics.median(sum(r.values()) for r in runs)
    return parts, outputs


def sentence(name: str, parts: dict[str, float]) -> str:
    """``name``: its total and the share of each part that takes any time, largest first."""
    total = parts["total"]
    shares = sorted(((p, parts[p]) for p in PARTS if parts[p] >= 0.005 * total), key=lambda x: -x[1])
    listed = ", ".join(f"{p} {100 * s / total:.0f} % ({s:.2f} s)" for p, s in shares)
    return f"{name}: {total:.2f} s per image: {listed}"
