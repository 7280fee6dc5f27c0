"""The cost model: operations counted per ray against hand counts, seconds against a hand computation,
and the calibration's output file."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest
import torch
from nerfstudio.field_components.encodings import HashEncoding

from nerfinternals import cost
from nerfinternals.internals import linear_macs
from tests.runs import REPO


def _kwargs(sampler: str, **over) -> dict:
    return {**cost.stock_kwargs(), "sampler": sampler, "layer": 1, **over}


def test_hash_lookups_are_levels_times_corners_times_features(models):
    model = models("nerfacto-stock")
    field_grids = [m for m in model.field.modules() if isinstance(m, HashEncoding)]
    assert field_grids  # the field's hash grid
    expected = sum(g.num_levels * 8 * g.features_per_level for g in field_grids) * 10
    assert cost.network_operations(model.field, 10)["hash"] == expected
    assert expected == 10 * 4 * 8 * 2  # tiny config: 4 levels, 2 features per level


@pytest.mark.parametrize("kind", ["nerf", "mipnerf", "nerfacto", "nerfacto-stock"])
@pytest.mark.parametrize("sampler", ["stock", "activation", "grid", "grid-all", "hybrid"])
def test_multiply_adds_of_the_cost_model_are_the_counted_multiply_adds(models, kind, sampler):
    """The MLP part of the operations is macs_per_ray (itself checked against hooks counting Linear calls)."""
    model = models(kind)
    for k in (0, 4):
        kwargs = _kwargs(sampler, fine_samples=k, skip_empty=sampler == "hybrid")
        ops = cost.render_operations(model, kwargs, rendered_fraction=0.5)
        macs = sum(v for key, v in ops.items() if isinstance(key, tuple) and key[0] == "mac")
        assert macs == pytest.approx(model.render_macs_per_ray({**kwargs, "n_probe": None}, 0.5), rel=1e-9)


def test_grid_all_spends_no_time_on_proposal_networks(models):
    model = models("nerfacto-stock")
    ops = cost.render_operations(model, _kwargs("grid-all"))
    (net1, k1), (field, k2) = model.fine_stages(0)
    assert ops["draw"] == k1 + k2 and ops["grid", 64] == model.num_probe_samples + k1
    assert ops["hash"] == cost.network_operations(field, k2)["hash"]  # the field's hash grid only
    grid = cost.render_operations(model, _kwargs("grid"))
    assert grid["hash"] == ops["hash"] + cost.network_operations(net1, k1)["hash"]


def test_grid_lookups_count_the_initial_samples_the_resolution_and_the_contraction(models):
    """N look-ups of an R^3 grid per ray (N: initial_samples, else the replaced network's count), each
    position contracted first where the model contracts space, as its networks' positions are."""
    contracted, bounded = models("nerfacto-stock"), models("nerfacto-bounded")
    ops = cost.render_operations(contracted, _kwargs("grid", grid_resolution=128, initial_samples=6))
    assert ops["grid", 128] == 6 and ("grid", 64) not in ops
    (net1, k1), (field, k2) = contracted.fine_stages(0)
    assert ops["contract"] == 6 + k1 + k2  # the look-ups, the second proposal network and the field
    assert cost.render_operations(bounded, _kwargs("grid"))["contract"] == 0  # no scene contraction
    stock = cost.render_operations(contracted, cost.stock_kwargs())
    assert stock["contract"] == contracted.num_probe_samples + k1 + k2


def test_seconds_weigh_each_operation_and_interpolate_multiply_adds_in_log_size():
    constants = {"mac": {"100": 4.0, "10000": 2.0}, "hash": 5.0, "grid": 7.0}
    ops = {("mac", 1000): 3.0, ("mac", 10): 1.0, ("mac", 10**6): 2.0, "hash": 2.0, "grid": 1.0}
    # 1000 is half-way between 100 and 10000 in log size: 3.0 per multiply-add; outside the range: the ends
    assert cost.seconds(ops, constants) == pytest.approx(3.0 * 3.0 + 1.0 * 4.0 + 2.0 * 2.0 + 2 * 5.0 + 7.0)
    # a grid look-up by resolution, as the multiply-adds by layer size
    tables = {"mac": {"100": 1.0}, "grid": {"64": 1.0, "256": 3.0}}
    assert cost.seconds({("grid", 128): 2.0, ("grid", 512): 1.0}, tables) == pytest.approx(2 * 2.0 + 3.0)


def test_constants_of_an_older_calibration_are_refused_in_one_line(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"constants": {"mac": {"100": 1.0}, "hash": 1.0, "grid": 1.0}}))
    with pytest.raises(ValueError, match=r"old\.json has no constant for .*contract.*calibrate_cost"):
        cost.load_constants(old)


def test_predicted_ratio_of_stock_is_one_and_budgets_predict_less(models):
    model = models("nerfacto")
    assert cost.predicted_time_ratio(model, cost.stock_kwargs()) == pytest.approx(1.0)
    assert cost.predicted_time_ratio(model, _kwargs("grid", fine_samples=4)) < cost.predicted_time_ratio(
        model, _kwargs("grid")
    )
    assert cost.predicted_time_ratio(model, _kwargs("grid-all")) < cost.predicted_time_ratio(
        model, _kwargs("grid")
    )


def test_fill_operations_count_the_grids_nodes(models):
    model = models("nerf")
    ops = cost.fill_operations(model, {"sampler": "grid", "grid_resolution": 4})
    mlp = model.field_coarse.mlp_base
    assert sum(v for k, v in ops.items() if isinstance(k, tuple)) == 4**3 * linear_macs(mlp)
    assert cost.fill_operations(model, {"sampler": "activation"}) == {}


def test_calibration_writes_every_constant(tmp_path):
    out = tmp_path / "constants.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.calibrate_cost", "--output", str(out), "--repeats", "1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.read_text())
    constants = record["constants"]
    assert set(constants) == {"mac", *cost.OPERATIONS} and record["machine"]
    assert record["allocator"] == ("steady" if platform.libc_ver()[0] == "glibc" else "default")
    assert all(c > 0 for table in cost.TABLES for c in constants[table].values())
    assert all(constants[k] > 0 for k in cost.OPERATIONS if k not in cost.TABLES)
    assert set(constants["grid"]) == {"32", "64", "128", "256"}
    ops = cost.render_operations(_build_tiny_nerf(), cost.stock_kwargs())
    assert cost.seconds(ops, constants) > 0


def _build_tiny_nerf():
    from tests.runs import build_model

    return build_model("nerf")


def test_packaged_constants_cover_every_operation():
    constants = cost.load_constants()
    assert set(constants) == {"mac", *cost.OPERATIONS}
    assert torch.tensor([float(v) for v in constants["mac"].values()]).gt(0).all()


def test_a_new_estimator_names_itself_and_is_priced_as_its_own(models, monkeypatch):
    """An estimator added to the registry (here a copy of grid under another name) gets its own experiment
    name, label and description and the cost of what it does (grid's), never another estimator's; one
    that does not state its names or cost fails saying which method it lacks."""
    from nerfinternals import estimators
    from nerfinternals.estimators import ESTIMATORS, Estimator, RenderOptions
    from nerfinternals.estimators.grid import GridEstimator
    from nerfinternals.eval import experiment_name

    class MyGrid(GridEstimator):
        name = "mygrid"

    class Forgetful(Estimator):
        name = "forgetful"

        def weights(self, rays, samples, rows):
            return samples.get_weights(samples.frustums.starts)

    monkeypatch.setitem(ESTIMATORS, "mygrid", MyGrid)
    monkeypatch.setitem(ESTIMATORS, "forgetful", Forgetful)
    model = models("nerfacto-stock")
    kwargs = _kwargs("mygrid", fine_samples=4, skip_empty=True, grid_resolution=32)
    assert experiment_name(**kwargs) == "mygrid32_k4_skip"
    options = RenderOptions(sampler="mygrid", grid_resolution=32, initial_samples=8)
    assert estimators.label(options) == "mygrid 32^3 n8"
    assert estimators.description(options) == "density grid sampler (32^3, 8 initial samples)"
    as_grid = {**kwargs, "sampler": "grid"}
    assert cost.render_operations(model, kwargs, 0.5) == cost.render_operations(model, as_grid, 0.5)
    assert model.render_macs_per_ray({**kwargs, "n_probe": None}, 0.5) == model.render_macs_per_ray(
        {**as_grid, "n_probe": None}, 0.5
    )
    for call in (
        lambda: experiment_name(**_kwargs("forgetful")),
        lambda: estimators.label(RenderOptions(sampler="forgetful")),
        lambda: cost.render_operations(model, _kwargs("forgetful")),
        lambda: model.macs_per_ray(1, sampler="forgetful"),
    ):
        with pytest.raises(
            NotImplementedError, match=r"estimator Forgetful \('forgetful'\) does not define \w+\(\)"
        ):
            call()
