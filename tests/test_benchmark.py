"""The speed/quality benchmark on a tiny model, the alternatives' sample counts, and the shipped demo runs."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import alternatives, speed_quality, targets
from nerfinternals.common import camera_rays
from nerfinternals.data.synthetic import generate_blender_scene
from nerfinternals.loading import InputError, load_pipeline
from tests.runs import REPO, camera_bundle, on_cpu, train

SHIPPED = sorted((REPO / "outputs" / "demo").glob("*/*/run/config.yml"))


@pytest.fixture(scope="module")
def tiny_nerf(tmp_path_factory) -> tuple[Path, Path]:
    """(config.yml, TORCH_HOME) of a tiny activation-nerf on a 20 x 16 px scene."""
    work = tmp_path_factory.mktemp("bench")
    home = work / "torch_home"
    home.mkdir()
    scene = generate_blender_scene(
        work / "scene", "spheres", width=20, height=16, num_train=4, num_val=1, num_test=1
    )
    return train("activation-nerf", scene, work, home), home


def _bench(args: list[str], home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TORCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.speed_quality", *on_cpu(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def _psnr_by_hand(pipeline, rgb: torch.Tensor) -> float:
    """PSNR of an (H, W, 3) render against the first eval image, composited over white by hand (numpy)."""
    import numpy as np

    _, batch = next(iter(pipeline.datamanager.fixed_indices_eval_dataloader))
    image = batch["image"].cpu().numpy().astype(np.float64)
    if image.shape[-1] == 4:
        image = image[..., :3] * image[..., 3:] + (1.0 - image[..., 3:])
    mse = np.mean((np.clip(rgb.cpu().numpy().astype(np.float64), 0, 1) - image) ** 2)
    return float(-10 * np.log10(mse))


def test_benchmark_writes_every_method(tiny_nerf, tmp_path, monkeypatch):
    config, home = tiny_nerf
    out = tmp_path / "results"
    args = ["--load-config", str(config), "--layer", "0", "--fct", "1", "--repeats", "1", "--max-images", "1"]
    args += ["--fine-samples", "0", "4", "--grid-resolution", "8", "--output-dir", str(out)]
    args += ["--order-seed", "7"]
    result = _bench(args, home, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    (run,) = results["runs"]
    # chosen on the val split, reported on the test split (the scene has one image in each)
    assert run["selection_views"] == ["val/r_0.png"] and run["report_views"] == ["test/r_0.png"]
    assert run["order_seed"] == 7 and run["repeats"] == 1
    assert results["allocator"] == ("steady" if platform.libc_ver()[0] == "glibc" else "default")
    ours = [
        "ours l0 std_half",
        "ours l0 std_half gate",
        "ours l0 std_half ups",
        "ours l0 std_half ups gate",
        "ours l0 std_half n4",
        "ours l0 std_half box",
        "ours l0 std_half n4 box",
        "ours l0 std_half k4",
        "hybrid l0 std_half skip",
        "hybrid l0 std_half k4 skip",
        "grid 8^3",
        "grid 8^3 skip",
        "grid 8^3 k4",
        "grid 8^3 k4 skip",
    ]
    alternatives = ["stock k4", "coarse N/2 (4)", "coarse N/4 (2)", "no-coarse (uniform)"]
    assert sorted(run["methods"]) == sorted(["base", "base again", "stock as shipped", *ours, *alternatives])
    methods = run["methods"]
    assert methods["base again"]["kind"] == "noise"  # stock run twice: the noise floor
    # stock through nerfstudio's kernels: the same pixels (the fast kernels are bit-identical), its own time
    shipped = methods["stock as shipped"]
    assert shipped["kind"] == "shipped" and run["kernels"] == "fast"
    assert shipped["psnr"] == methods["base"]["psnr"]
    assert all(r["time_ratio_over_shipped"] == r["t"] / shipped["t"] for r in methods.values())
    floor = run["noise_floor"]["fp32"]
    assert floor == pytest.approx(abs(methods["base again"]["t"] / methods["base"]["t"] - 1))  # one repeat
    assert all(r["within_noise"] == (abs(r["time_ratio"] - 1) <= floor) for r in methods.values())
    assert {n for n, r in methods.items() if r["kind"] == "ours"} == set(ours)
    assert {n for n, r in methods.items() if r["kind"] == "alternative"} == set(alternatives)
    for name, row in methods.items():
        assert row["t"] > 0 and math.isfinite(row["psnr"]), name
        assert row["t_min"] <= row["t"] <= row["t_max"], name
        assert row["lpips"] is None  # no AlexNet weights in TORCH_HOME: reported as null
        assert row["peak_mem_mb"] is not None
    # base's PSNR against the eval image, computed here by hand from nerfstudio's stock render
    monkeypatch.setenv("TORCH_HOME", str(home))
    pipeline = load_pipeline(config, device="cpu")[1]
    bundle = camera_rays(pipeline.datamanager.fixed_indices_eval_dataloader.cameras[0:1])
    stock = pipeline.model.render_stock(bundle)["rgb_fine"]
    assert methods["base"]["psnr"] == pytest.approx(_psnr_by_hand(pipeline, stock), abs=1e-3)
    # and the selection figures are the val image's
    val = load_pipeline(config, device="cpu", test_mode="val")[1]
    bundle = camera_rays(val.datamanager.fixed_indices_eval_dataloader.cameras[0:1])
    stock = val.model.render_stock(bundle)["rgb_fine"]
    assert run["selection_methods"]["base"]["psnr"] == pytest.approx(_psnr_by_hand(val, stock), abs=1e-3)
    # the grid's fill: once per model, counted for every configuration that needs the grid
    fill = run["grid_fill_seconds"]["8"]
    assert 0 < fill["min"] <= fill["median"] <= fill["max"]
    base_t = methods["base"]["t"]
    for name, row in methods.items():
        needs_grid = row.get("config", {}).get("sampler") == "grid" or "skip" in name
        assert (row["fill_seconds"] is not None) == needs_grid, name
        assert row["speedup"] == pytest.approx(base_t / row["t"]), name
        if needs_grid:
            assert row["fill_seconds"] == fill["median"]
            assert row["speedup_one_image"] == pytest.approx(base_t / (row["t"] + fill["median"]))
            n = row["fill_pays_after_images"]
            if row["t"] >= base_t:
                assert n is None, name
            else:  # the first image count at which n renders and the fill take no longer than n stock renders
                assert n * row["t"] + fill["median"] <= n * base_t + 1e-9
                assert (n - 1) * row["t"] + fill["median"] > (n - 1) * base_t
    # configurations carry what they ran
    assert methods["grid 8^3 k4 skip"]["config"]["sampler"] == "grid"
    assert methods["grid 8^3 k4 skip"]["config"]["fine_samples"] == 4
    assert methods["hybrid l0 std_half skip"]["config"]["skip_empty"] is True
    assert 0.0 <= methods["grid 8^3 skip"]["rendered_fraction"] <= 1.0
    assert set(run["targets"]) >= {"speed", "ahead_of_every_alternative", "on_or_above_front", "gate"}
    assert "NerfAcc occupancy grid" in run["not_run"]  # CPU: nerfacc's ray marching needs CUDA

    table = (out / "results.md").read_text()
    for name in methods:
        assert f"| {name} |" in table
    assert "| fill [s] |" in table and f"| {methods['grid 8^3']['fill_seconds']:.2f} |" in table
    assert "selection views (val split selects, test split reports): val/r_0.png" in table
    assert (
        f"noise floor (stock against stock run again, largest difference over repeats): {100 * floor:.1f} %"
        in table
    )
    assert "order seed 7" in table
    assert "fastest within 0.1 dB of base" in table
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "base" in result.stdout and "fastest within 0.1 dB" in result.stdout
    # the cost model beside every measured ratio it can predict: base is 1 by definition, stock kK is
    # predicted from its counts, the no-coarse render has no prediction
    assert methods["base"]["predicted_time_ratio"] == 1.0
    assert 0 < methods["stock k4"]["predicted_time_ratio"] < 1
    assert methods["no-coarse (uniform)"]["predicted_time_ratio"] is None
    assert all(methods[n]["predicted_time_ratio"] > 0 for n in ours)
    cost = run["targets"]["cost_model"]
    assert cost["rows"] == len(ours) + 3  # ours, stock k4 and the two coarse alternatives
    assert "| predicted t ratio |" in table and "cost model's predicted time ratio within 30 %" in table
    # where the time goes, on the first report view: parts add up to the total; base runs its coarse network
    where = run["where_time_goes"]
    assert where["view"] == "test/r_0.png"
    base_parts = where["parts"]["base"]
    assert sum(v for k, v in base_parts.items() if k != "total") == pytest.approx(
        base_parts["total"], rel=1e-6
    )
    assert base_parts["replaced network"] > 0 and base_parts["field"] > 0 and base_parts["estimate"] == 0
    assert "Where the time goes" in table and "- base: " in table
    # the picture: stock, the fastest within the budget and their difference, linked from results.md
    label = run["label"]
    assert (out / f"{label}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({label}.png)" in table
    assert set(run["goals"]) == {"fp32", "best precision"} and "goal ≥ 3x at fp32" in table

    # two invocations merged into one folder: runs in order, pictures under distinct names, nothing measured
    from benchmarks.merge_results import MergeResults, merge

    merged = merge(MergeResults(inputs=(out, out), output_dir=tmp_path / "merged"))
    assert [r["methods"] for r in merged["runs"]] == [run["methods"], run["methods"]]
    second = merged["runs"][1]["picture"]
    assert (
        second == f"{label}+.png"
        and (tmp_path / "merged" / second).read_bytes() == (out / f"{label}.png").read_bytes()
    )
    assert (tmp_path / "merged" / "results.md").read_text().count("## ") == 2
    # the pictures drawn again from a fresh load: the same renders, so the same picture
    import matplotlib.image

    from benchmarks.redraw_pictures import RedrawPictures, redraw

    before = matplotlib.image.imread(out / f"{label}.png")
    (out / f"{label}.png").unlink()
    redraw(RedrawPictures(results_dir=out, device="cpu"))
    after = matplotlib.image.imread(out / f"{label}.png")
    assert after.shape == before.shape and abs(after - before).max() <= 2 / 255

    again = _bench(["--load-config", str(config), "--output-dir", str(out)], home, tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"error: output folder {out} is not empty: pass --overwrite or choose another --output-dir"
    ]
    for bad, message in (
        (["--fine-samples", "1"], "error: --fine-samples must be 0"),
        (["--grid-resolution", "1"], "error: --grid-resolution must be at least 2"),
        (
            ["--initial-samples", "1"],
            "error: --initial-samples must be 0 (the replaced network's count) or at least 2",
        ),
        (["--sampler", "occupancy"], "error: "),
        (["--selection-repeats", "0"], "error: --selection-repeats must be at least 1, got 0"),
        (["--selection-images", "0"], "error: --selection-images must be at least 1, got 0"),
    ):
        result = _bench(
            ["--load-config", str(config), "--output-dir", str(tmp_path / "bad"), *bad], home, tmp_path
        )
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(message), bad
        assert not (tmp_path / "bad").exists()


def test_benchmark_precisions_and_rescale(tiny_nerf, tmp_path):
    """Every method at each precision in one run, ratios to base at the first, ΔPSNR at the same one."""
    config, home = tiny_nerf
    out = tmp_path / "results"
    args = [
        "--load-config",
        str(config),
        "--layer",
        "1",
        "--fct",
        "0",
        "--repeats",
        "1",
        "--sampler",
        "activation",
    ]
    args += ["--no-upsample", "--no-gate", "--no-sampling", "--selection-repeats", "2", "--no-memory"]
    args += ["--precision", "fp32", "bf16", "--rescale", "0.5", "--keep-near-plane", "--output-dir", str(out)]
    result = _bench(args, home, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = json.loads((out / "results.json").read_text())["runs"]
    assert run["image_shape"] == [8, 10]  # the 16 x 20 scene at half resolution
    assert run["precisions"] == ["fp32", "bf16"] and run["keep_near_plane"] is True
    names = {
        f"{m} @{p}"
        for p in ("fp32", "bf16")
        for m in (
            "base",
            "base again",
            "stock as shipped",
            "ours l1 std",
            "coarse N/2 (4)",
            "coarse N/4 (2)",
            "no-coarse (uniform)",
        )
    }
    assert set(run["methods"]) == names
    rows = run["methods"]
    # two references per row: base at the first precision, and base at the row's own
    for name, row in rows.items():
        same = rows[f"base @{row['precision']}"]
        assert row["psnr_delta_same_precision"] == pytest.approx(row["psnr"] - same["psnr"]), name
        assert row["time_ratio"] == pytest.approx(row["t"] / rows["base @fp32"]["t"]), name
    assert set(run["targets_by_precision"]) == {"fp32", "bf16"}
    assert "ΔPSNR to base at its precision" in (out / "results.md").read_text()
    # 2 timed renders per selection view against 1 per report view; no memory measured
    assert run["selection_repeats"] == 2 and run["repeats"] == 1
    assert "2 repeat(s) per selection view" in (out / "results.md").read_text()
    assert all(row["peak_mem_mb"] is None for row in rows.values())
    bad = _bench(
        ["--load-config", str(config), "--precision", "tf32", "--output-dir", str(tmp_path / "b")],
        home,
        tmp_path,
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "error: --precision tf32 needs a CUDA device"
    )


def _row(kind, t, psnr, sampler="activation"):
    config = {
        "gate": False,
        "upsample": False,
        "layer": 0,
        "in_box": False,
        "n_probe": None,
        "sampler": sampler,
    }
    config.update(fine_samples=0, skip_empty=False)
    return {
        "kind": kind,
        "t": t,
        "psnr": psnr,
        "time_ratio": t,
        "macs_ratio": t,
        "psnr_delta": psnr - 30,
        "config": config,
    }


def test_ahead_of_every_alternative_rule():
    rows = {
        "base": _row("base", 1.0, 30.0),
        "fast": _row("alternative", 0.5, 29.0),
        "good": _row("alternative", 0.8, 30.5),
        "ours a": _row("ours", 0.5, 29.0),  # ties "fast": counts as ahead (as fast, PSNR as high)
        "ours b": _row("ours", 0.7, 30.2),  # faster than "good" but 0.3 dB short
    }
    ahead = targets.targets(rows)["ahead_of_every_alternative"]
    assert ahead["ahead"] == {"fast": ["ours a"], "good": []}
    assert ahead["not_ahead_of"] == ["good"] and ahead["met"] is False
    assert ahead["shortfall"]["good"] == {"best_as_fast": "ours b", "psnr_short_db": pytest.approx(0.3)}
    rows["ours c"] = _row("ours", 0.8, 30.5, sampler="grid")  # any sampler of the product counts
    ahead = targets.targets(rows)["ahead_of_every_alternative"]
    assert ahead["ahead"]["good"] == ["ours c"] and ahead["met"] is True


def test_speed_targets_pick_the_fastest_within_the_budget_per_estimate():
    rows = {
        "base": _row("base", 1.0, 30.0),
        "act slow": _row("ours", 0.5, 30.0),
        "act fast": _row("ours", 0.2, 29.85),  # -0.15 dB: outside 0.1
        "hyb": _row("ours", 0.25, 29.95, sampler="hybrid"),  # the activation family's fastest within 0.1
        "grid": _row("ours", 0.1, 30.1, sampler="grid"),
        "coarse": _row("alternative", 0.6, 29.95),
    }
    speed = targets.targets(rows)["speed"]
    assert speed["activation"]["name"] == "hyb" and speed["activation"]["speedup"] == pytest.approx(4.0)
    assert speed["grid"]["name"] == "grid" and speed["grid"]["speedup"] == pytest.approx(10.0)
    assert speed["product"]["name"] == "grid" and speed["winner"] == "grid"
    assert speed["alternatives"]["name"] == "coarse"


def test_fastest_within_holds_the_budget_on_every_selection_view():
    """A row within the budget on the mean of its views but not on one of them is not picked; rows without
    per-view figures are judged on their mean."""
    rows = {
        "base": _row("base", 1.0, 30.0),
        "fast": {**_row("ours", 0.2, 30.0), "psnr_delta_worst_view": -0.4},  # mean 0.0, one view -0.4
        "slower": {**_row("ours", 0.3, 29.95), "psnr_delta_worst_view": -0.08},
    }
    assert targets.fastest_within(rows) == "slower"
    assert targets.fastest_within({k: rows[k] for k in ("base", "fast")}) == "base"
    assert targets.fastest_within({"fast": _row("ours", 0.2, 30.0)}) == "fast"
    pick = targets.targets(rows, rows)["speed"]["product"]
    assert pick["name"] == "slower" and pick["selection_psnr_delta_worst_view"] == -0.08


def test_targets_choose_on_the_selection_views_and_report_the_report_views():
    """The fastest within the budget is chosen on the selection rows; its figures are the report rows'. A pick
    that misses the budget on the report views says so; the report rows' own fastest is not chosen."""
    report = {
        "base": _row("base", 1.0, 30.0),
        "a": _row("ours", 0.3, 29.5),  # fastest and within 0.1 dB on selection, -0.5 dB on report
        "b": _row("ours", 0.2, 30.0),  # fastest within 0.1 dB on report only: never the pick
        "alt": _row("alternative", 0.6, 30.0),
        "g": _row("ours", 0.4, 29.0),
    }
    report["g"]["config"]["gate"] = True
    selection = {**report, "a": _row("ours", 0.25, 30.0), "b": _row("ours", 0.2, 29.0)}
    selection["g"] = {**_row("ours", 0.3, 29.9), "config": report["g"]["config"]}
    t = targets.targets(report, selection)
    pick = t["speed"]["product"]
    assert pick["name"] == "a" and pick["time_ratio"] == 0.3 and pick["psnr_delta"] == pytest.approx(-0.5)
    assert pick["selection_time_ratio"] == 0.25 and pick["selection_psnr_delta"] == pytest.approx(0.0)
    assert pick["within_on_report_views"] is False
    assert (
        targets.targets(report)["speed"]["product"]["name"] == "b"
    )  # what choosing on the report views picks
    # ahead of an alternative on the selection views, and still ahead on the report views
    ahead = t["ahead_of_every_alternative"]
    assert ahead["ahead_on_selection_views"]["alt"] == ["a"] and ahead["ahead"]["alt"] == []
    assert ahead["met"] is False
    assert t["gate"]["fastest"] == "g" and t["gate"]["fastest_time_ratio"] == 0.4
    # a pick with a fill carries its one-image figures
    report["a"].update(fill_seconds=1.0, speedup_one_image=0.5, fill_pays_after_images=None)
    assert targets.targets(report, selection)["speed"]["product"]["fill_seconds"] == 1.0


def test_cost_model_target_by_hand():
    rows = {
        "base": {"kind": "base", "time_ratio": 1.0, "predicted_time_ratio": 1.0},
        "a": {"kind": "ours", "time_ratio": 0.5, "predicted_time_ratio": 0.6},  # +20 %
        "b": {"kind": "alternative", "time_ratio": 0.4, "predicted_time_ratio": 0.2},  # -50 %
        "c": {"kind": "ours", "time_ratio": 0.5, "predicted_time_ratio": None},  # bf16: no prediction
    }
    x = targets.cost_model(rows)
    assert x["rows"] == 2 and not x["met"] and set(x["outside"]) == {"b"}
    assert x["outside"]["b"] == pytest.approx(-0.5) and x["max_abs_error"] == pytest.approx(0.5)
    assert x["median_abs_error"] == pytest.approx(0.35)
    del rows["b"]
    assert targets.cost_model(rows)["met"]
    assert targets.cost_model({"base": rows["base"]}) is None


def test_speed_goals_say_by_how_much_they_are_missed():
    def pick(speedup, within=True):
        return {
            "speed": {
                "product": {"name": f"x{speedup}", "speedup": speedup, "within_on_report_views": within}
            }
        }

    goals = targets.speed_goals({"fp32": pick(2.4)}, pick(6.0), stock_nerfacto=False)
    assert goals["fp32"] == {
        "goal": 3.0,
        "pick": "x2.4",
        "speedup": 2.4,
        "within_on_report_views": True,
        "short_by": pytest.approx(0.6),
        "met": False,
    }
    assert goals["best precision"]["met"] and goals["best precision"]["short_by"] is None
    stock = targets.speed_goals({"fp32": pick(4.0)}, pick(6.0, within=False), stock_nerfacto=True)
    assert stock["fp32"]["goal"] == 5.0 and stock["fp32"]["short_by"] == pytest.approx(1.0)
    # fast enough, but outside the budget on the report views
    assert not stock["best precision"]["met"] and stock["best precision"]["short_by"] is None
    none = targets.speed_goals({"fp32": {"speed": {"product": None}}}, {"speed": {"product": None}}, False)
    assert none["fp32"]["speedup"] is None and not none["fp32"]["met"]


def test_fill_figures_by_hand():
    from benchmarks.speed_quality import fill_figures

    # base 1.0 s per image, the method 0.25 s plus a 2.0 s fill: 2.25 s for one image; pays after
    # n with 0.25 n + 2 <= n: n >= 2.67 -> 3 images
    assert fill_figures(2.0, 0.25, 1.0) == {
        "fill_seconds": 2.0,
        "speedup": 4.0,
        "speedup_one_image": pytest.approx(1 / 2.25),
        "fill_pays_after_images": 3,
    }
    assert fill_figures(2.0, 1.5, 1.0)["fill_pays_after_images"] is None  # slower than base: never
    assert fill_figures(None, 0.5, 1.0) == {"fill_seconds": None, "speedup": 2.0}


def _linear_macs_by_hooks(model, render) -> float:
    """Multiply-adds of every nn.Linear call during ``render()``, counted with forward hooks, per ray."""
    count = [0]

    def hook(module, inputs, output):
        count[0] += inputs[0].numel() // module.in_features * module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        outputs = render()
    finally:
        for h in handles:
            h.remove()
    return count[0], outputs


def test_multiply_adds_match_the_linear_layers_actually_run(tiny_nerf, monkeypatch):
    """Each method's multiply-add count equals what forward hooks on every Linear layer count while it renders
    (skipping and probing fractions included)."""
    config, home = tiny_nerf
    monkeypatch.setenv("TORCH_HOME", str(home))
    model = load_pipeline(config, device="cpu")[1].model
    cfg = speed_quality.SpeedQuality(
        load_config=(config,),
        layer=(1,),
        fct=(1,),
        fine_samples=(0, 4),
        grid_resolution=(8,),
        initial_samples=(0, 4),
    )
    methods, _, _ = speed_quality.methods_for(model, cfg)
    bundle = camera_bundle()
    rays = bundle.shape[0] * bundle.shape[1]
    checked = 0
    for m in methods:
        if m.name.startswith("grid") or "gate" in m.name or "ups" in m.name:
            model.density_grid(8)  # the grid's fill is a one-time cost, outside the per-ray count
        counted, outputs = _linear_macs_by_hooks(model, lambda m=m: m.render(bundle))
        if "box" in m.name or "ups" in m.name or "gate" in m.name:
            continue  # the probe's share is stated as at most (box) or estimated per pixel (ups)
        assert m.macs_per_ray(outputs) == pytest.approx(counted / rays, rel=1e-6), m.name
        checked += 1
    assert checked >= 10


def test_fewer_coarse_samples_are_restored(tiny_nerf, monkeypatch):
    config, home = tiny_nerf
    monkeypatch.setenv("TORCH_HOME", str(home))
    model = load_pipeline(config, device="cpu")[1].model
    before = model.macs_per_ray(None)
    with alternatives.coarse_samples(model, 2):
        assert model.sampler_uniform.num_samples == 2 == model.config.num_coarse_samples
        assert model.macs_per_ray(None) < before
    assert model.sampler_uniform.num_samples == model.config.num_coarse_samples == 8
    assert model.macs_per_ray(None) == before


def test_pareto_front_and_domination():
    rows = {
        "base": {"time_ratio": 1.0, "psnr": 30.0},
        "fast": {"time_ratio": 0.5, "psnr": 29.0},
        "worse": {"time_ratio": 0.6, "psnr": 28.0},  # slower and worse than "fast"
        "tie": {"time_ratio": 0.5, "psnr": 29.0},  # equal: neither dominates the other
    }
    assert targets.dominated_by(rows["worse"], rows) == ["fast", "tie"]
    assert targets.dominated_by(rows["tie"], rows) == []
    assert targets.pareto_front(rows) == ["fast", "tie", "base"]


def test_nerfacc_unavailable_is_a_reason_not_a_crash(monkeypatch):
    """NerfAcc's CUDA extension is loaded to judge it (import nerfacc alone never builds it)."""
    import sys
    import types

    fake = types.ModuleType("nerfacc.cuda._backend")
    fake._C = None  # what nerfacc leaves when its build fails
    monkeypatch.setitem(sys.modules, "nerfacc.cuda._backend", fake)
    import nerfacc.cuda

    monkeypatch.setattr(nerfacc.cuda, "_backend", fake, raising=False)
    assert "could not be built" in alternatives.nerfacc_unavailable()


@pytest.mark.skipif(not SHIPPED, reason="no shipped demo runs in outputs/demo")
@pytest.mark.parametrize("config", SHIPPED, ids=[c.parts[-3] for c in SHIPPED])
def test_shipped_run_loads_from_a_copy_of_the_repo(config, tmp_path, monkeypatch):
    """config.yml paths are relative: the run loads from another folder once the scene is regenerated."""
    run_rel = config.parent.relative_to(REPO)
    copy = tmp_path / "clone"
    shutil.copytree(config.parent, copy / run_rel, ignore=shutil.ignore_patterns("eval*", "visualize*"))
    assert str(REPO) not in (copy / run_rel / "config.yml").read_text()
    ckpts = sorted((copy / run_rel / "nerfstudio_models").glob("step-*.ckpt"))
    assert ckpts and all(c.stat().st_size < 8e6 for c in ckpts), "shipped checkpoints stay small"
    assert set(torch.load(ckpts[-1], map_location="cpu", weights_only=False)) == {"step", "pipeline"}

    monkeypatch.chdir(copy)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    from nerfinternals.demo import DEMO_SCENE, ensure_scene

    ensure_scene(Path(DEMO_SCENE))
    _, pipeline, ckpt, step = load_pipeline(run_rel / "config.yml", device="cpu")
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["pipeline"]
    state = pipeline.state_dict()
    for key, value in saved.items():
        assert torch.equal(state[key].cpu(), value), key
    assert step > 0


def test_choose_cell_variance_refuses_a_nerf_run(tiny_nerf, tmp_path):
    config, home = tiny_nerf
    env = {**os.environ, "TORCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    out = tmp_path / "cv"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.choose_cell_variance", "--load-config", str(config)]
        + ["--output-dir", str(out), "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: activation-nerf is not a Mip-NeRF run: it has no grid cell variance"
    )
    assert not out.exists()


LEGO_MIPNERF = REPO.parent / "shared/checkpoints/lego400/activation-mipnerf/run/config.yml"


@pytest.mark.skipif(not LEGO_MIPNERF.is_file(), reason="no shared lego Mip-NeRF run")
def test_choose_cell_variance_chooses_on_selection_views_only(tmp_path, monkeypatch, empty_torch_home):
    """On the shared lego Mip-NeRF at 8 px: the candidates render the selection views only (the render sees
    no other camera), the choice is the candidate with the highest mean ΔPSNR, the class keeps its constant."""
    from benchmarks import choose_cell_variance as ccv
    from nerfinternals.models.nerf import ActivationMipNerfModel

    shipped = ActivationMipNerfModel.GRID_CELL_VARIANCE
    monkeypatch.chdir(REPO)  # the run's data path, ../shared/lego400, is relative to the repository
    cfg = ccv.ChooseCellVariance(
        load_config=LEGO_MIPNERF,
        output_dir=tmp_path / "cv",
        variances=(0.0, 1.0),
        fine_samples=(0,),
        grid_resolution=8,
        rescale=0.02,
        max_images=1,
        device="cpu",
    )
    result = ccv.choose(cfg)
    # lego400's val split repeats its test cameras: the test images alternate (tests/test_llff.py)
    assert result["selection_views"] == ["test/r_0.png"] and result["report_views"] == ["test/r_10.png"]
    assert result["report_views_rendered"] is False and result["image_shape"] == [8, 8]
    best = max(result["candidates"], key=lambda r: r["mean_psnr_delta"])
    assert result["chosen"] == best["variance"] and result["shipped"] == shipped
    assert ActivationMipNerfModel.GRID_CELL_VARIANCE == shipped
    assert result["candidates"][0]["psnr_delta"]["0"] != result["candidates"][1]["psnr_delta"]["0"]
    assert "chosen:" in (tmp_path / "cv" / "cell_variance.md").read_text()


def test_goal_lines_say_met_short_and_outside_the_budget():
    from benchmarks.report import goal_lines

    def goal(speedup, within):
        return {
            "goal": 5.0,
            "pick": "grid 64^3",
            "speedup": speedup,
            "within_on_report_views": within,
            "short_by": None if speedup >= 5.0 else 5.0 - speedup,
            "met": speedup >= 5.0 and within,
        }

    lines = goal_lines(
        {"goals": {"a": goal(6.0, True), "b": goal(6.0, False), "c": goal(4.0, True), "d": goal(4.0, False)}}
    )
    assert lines[0] == "goal ≥ 5x at a within 0.1 dB: met (grid 64^3: 6.00x)"
    assert lines[1].startswith(
        "goal ≥ 5x at b within 0.1 dB: missed (grid 64^3: 6.00x, chosen on the selection views"
    )
    assert lines[2] == "goal ≥ 5x at c within 0.1 dB: missed by 1.00x (20 % short; grid 64^3: 4.00x)"
    assert lines[3] == (
        "goal ≥ 5x at d within 0.1 dB: missed by 1.00x (20 % short; grid 64^3: 4.00x, and outside 0.1 dB on the "
        "report views)"
    )


def test_selection_views_measures_training_cameras_against_every_eval_image(tmp_path, monkeypatch):
    """benchmarks.selection_views on the shipped NeRF run: the named training cameras and eval images are
    disjoint; stock's PSNR on each training camera is nerfstudio's PSNR of the stock render of that image;
    an existing output is refused."""
    from benchmarks.selection_views import SelectionViews, measure
    from nerfinternals.common import eval_views
    from nerfinternals.demo import DEMO_SCENE, ensure_scene
    from nerfinternals.views import split_views

    run = REPO / "outputs/demo/spheres/activation-nerf/run/config.yml"
    if not run.is_file():
        pytest.skip("no shipped activation-nerf run")
    monkeypatch.chdir(REPO)  # the shipped config names its data relative to the repo
    ensure_scene(REPO / DEMO_SCENE)
    cfg = SelectionViews(
        load_config=run,
        output=tmp_path / "sel.json",
        rescale=0.25,
        train_views=2,
        max_images=1,
        num_candidates=2,
    )
    result = measure(cfg)
    assert (
        all(n.startswith("train/") for n in result["selection_views"]) and len(result["selection_views"]) == 2
    )
    assert result["report_views"] == ["test/r_0.png"]
    assert len(result["rows"]) == 2 and json.loads(cfg.output.read_text())["rows"] == result["rows"]
    _, pipeline, _, _ = load_pipeline(run, device="cpu")
    side = split_views(pipeline.datamanager, 1, "train", 2).selection
    views = eval_views(pipeline.model, side.loader("cpu"), None, 0.25)
    with torch.inference_mode():
        for (_, bundle, target), stock in zip(views, result["psnr"]["train"]["stock"], strict=True):
            rgb = pipeline.model.render_stock(bundle)["rgb_fine"]
            expected = float(pipeline.model.psnr(rgb.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None]))
            assert stock == pytest.approx(expected, abs=1e-4)
    with pytest.raises(InputError, match="exists"):
        measure(cfg)


def test_kernel_benchmark_times_nerfstudios_kernels_against_ours(tmp_path):
    from benchmarks import kernels as kernel_benchmark

    out = tmp_path / "kernels.json"
    cfg = kernel_benchmark.KernelBenchmark(positions=500, repeats=1, compiled=False, output=out)
    rows = kernel_benchmark.measure(cfg)["kernels"]
    assert set(rows) == {
        "scene contraction / stock",
        "scene contraction / fast",
        "hash encoding (8 x 2^17) / stock",
        "hash encoding (8 x 2^17) / fast",
    }
    # "same bits" is torch.equal with nerfstudio's own output on the same positions
    assert all(row["identical"] and row["ns_per_position"] > 0 for row in rows.values())
    assert json.loads(out.read_text())["kernels"] == rows
    with pytest.raises(InputError, match="--positions and --repeats must be at least 1"):
        kernel_benchmark.measure(kernel_benchmark.KernelBenchmark(positions=0))
