"""Where a render's time goes: each part of the pipeline charged once, the model left as it was."""

from __future__ import annotations

import time

import pytest
import torch

from benchmarks.where_time_goes import PARTS, PartClock, profile, sentence
from tests.runs import camera_bundle


def test_nested_calls_are_charged_to_the_innermost_part():
    clock = PartClock(torch.device("cpu"))

    def inner():
        time.sleep(0.05)

    def outer():
        time.sleep(0.03)
        clock.wrap(inner, "field")()
        time.sleep(0.02)

    clock.start()
    clock.wrap(outer, "sampling")()
    clock.stop()
    assert clock.totals["field"] == pytest.approx(0.05, abs=0.02)
    assert clock.totals["sampling"] == pytest.approx(0.05, abs=0.02)  # 0.03 + 0.02, without the field's 0.05
    assert clock.totals["other"] < 0.02


@pytest.mark.parametrize("kind", ["nerfacto", "nerf"])
def test_profile_names_the_networks_each_sampler_runs(models, kind):
    model = models(kind)
    model.set_inference()
    bundle = camera_bundle()
    with torch.inference_mode():
        stock, stock_out = profile(model, lambda: model.render_stock(bundle), repeats=1)
        grid_all, grid_out = profile(
            model, lambda: model.render_sampled(bundle, "grid-all", grid_resolution=8)[0], repeats=1
        )
        reference = model.render_sampled(bundle, "grid-all", grid_resolution=8)[0]
    assert set(stock) == {*PARTS, "total"}
    for parts in (stock, grid_all):
        assert sum(parts[p] for p in PARTS) == pytest.approx(parts["total"], rel=1e-9)
    # stock runs the replaced network (NeRF's coarse MLP, nerfacto's first proposal network) and samples
    assert stock["replaced network"] > 0 and stock["field"] > 0 and stock["sampling"] > 0
    assert stock["estimate"] == 0
    # grid-all runs no network but the field: the grid stands in for every earlier one
    assert grid_all["replaced network"] == 0 and grid_all["later proposal networks"] == 0
    assert grid_all["estimate"] > 0 and grid_all["field"] > 0
    if kind == "nerfacto":
        assert stock["later proposal networks"] > 0
    # the profiled render is the render, and the model is unwrapped afterwards
    torch.testing.assert_close(grid_out["rgb"], reference["rgb"])
    assert "estimator" not in model.__dict__
    wrapped = ("get_density", "get_outputs", "generate_ray_samples")
    assert not any(name in m.__dict__ for m in model.modules() for name in wrapped)
    line = sentence("base", stock)
    assert line.startswith(f"base: {stock['total']:.2f} s per image: ") and "field " in line
