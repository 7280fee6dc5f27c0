"""The speed/quality benchmark on a tiny model, the alternatives' sample counts, and the shipped demo runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import speed_quality
from nerfinternals.data.synthetic import generate_blender_scene
from nerfinternals.internals import linear_macs
from nerfinternals.loading import load_pipeline
from tests.runs import REPO, on_cpu, train

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


def test_benchmark_writes_every_method(tiny_nerf, tmp_path):
    config, home = tiny_nerf
    out = tmp_path / "results"
    result = _bench(
        [
            "--load-config",
            str(config),
            "--layer",
            "0",
            "--fct",
            "1",
            "--repeats",
            "1",
            "--grid-resolution",
            "8",
            "--output-dir",
            str(out),
        ],
        home,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    (run,) = results["runs"]
    expected = [
        "base",
        "ours l0 std_half",
        "ours l0 std_half gate",
        "ours l0 std_half ups",
        "ours l0 std_half ups gate",
        "ours l0 std_half n4",
        "ours l0 std_half box",
        "ours l0 std_half n4 box",
        "coarse N/2 (4)",
        "coarse N/4 (2)",
        "no-coarse (uniform)",
        "density grid 8^3",
    ]
    assert sorted(run["methods"]) == sorted(expected)
    for name, row in run["methods"].items():
        assert row["t"] > 0, name
        assert row["psnr"] == pytest.approx(row["psnr"])  # finite, not NaN
        assert row["lpips"] is None  # no AlexNet weights in TORCH_HOME: reported as null
        assert row["peak_mem_mb"] is not None
    methods = run["methods"]
    assert methods["base"]["time_ratio"] == pytest.approx(1.0)
    assert methods["base"]["macs_ratio"] == pytest.approx(1.0)
    # NeRF with 8 + 8 samples: N/2 coarse samples -> 4 x coarse + (4 + 8) x fine MLP evaluations.
    assert methods["coarse N/2 (4)"]["macs_ratio"] < 1.0
    assert methods["no-coarse (uniform)"]["macs_ratio"] < methods["ours l0 std_half"]["macs_ratio"]
    assert 0.0 <= methods["ours l0 std_half gate"]["rendered_fraction"] <= 1.0
    assert set(run["targets"]) == {
        "time_ratio_matches_macs",
        "best_within_1db",
        "on_or_above_front",
        "ahead_of_every_alternative",
        "gate",
    }
    ahead = run["targets"]["ahead_of_every_alternative"]
    assert set(ahead["ahead"]) == {n for n, r in methods.items() if r["kind"] == "alternative"}
    assert ahead["met"] == (not ahead["not_ahead_of"])
    assert "NerfAcc occupancy grid" in run["not_run"]  # CPU: nerfacc's ray marching needs CUDA
    # fewer probe samples: the probe's multiply-adds scale with them
    assert methods["ours l0 std_half n4"]["macs_ratio"] < methods["ours l0 std_half"]["macs_ratio"]
    assert methods["ours l0 std_half box"]["config"]["in_box"] is True
    assert methods["density grid 8^3"]["macs_ratio"] == methods["no-coarse (uniform)"]["macs_ratio"]

    table = (out / "results.md").read_text()
    for name in expected:
        assert f"| {name} |" in table
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "base" in result.stdout and "time ratio within" in result.stdout

    again = _bench(["--load-config", str(config), "--output-dir", str(out)], home, tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"error: output folder {out} is not empty: pass --overwrite or choose another --output-dir"
    ]


def test_benchmark_precisions_and_rescale(tiny_nerf, tmp_path):
    """Every method at each precision in one run, ratios to base at the first, ΔPSNR at the same one."""
    config, home = tiny_nerf
    out = tmp_path / "results"
    args = ["--load-config", str(config), "--layer", "1", "--fct", "0", "--repeats", "1"]
    args += ["--no-upsample", "--no-gate", "--no-sampling", "--grid-resolution", "0"]
    args += ["--precision", "fp32", "bf16", "--rescale", "0.5", "--keep-near-plane", "--output-dir", str(out)]
    result = _bench(args, home, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = json.loads((out / "results.json").read_text())["runs"]
    assert run["image_shape"] == [8, 10]  # the 16 x 20 scene at half resolution
    assert run["precisions"] == ["fp32", "bf16"] and run["keep_near_plane"] is True
    names = {
        f"{m} @{p}"
        for p in ("fp32", "bf16")
        for m in ("base", "ours l1 std", "coarse N/2 (4)", "coarse N/4 (2)", "no-coarse (uniform)")
    }
    assert set(run["methods"]) == names
    rows = run["methods"]
    assert rows["base @fp32"]["time_ratio"] == pytest.approx(1.0)
    assert rows["base @bf16"]["psnr_delta_same_precision"] == pytest.approx(0.0)
    assert rows["base @bf16"]["psnr_delta"] == pytest.approx(
        rows["base @bf16"]["psnr"] - rows["base @fp32"]["psnr"]
    )
    assert all(r["precision"] in ("fp32", "bf16") for r in rows.values())
    assert set(run["targets_by_precision"]) == {"fp32", "bf16"}
    assert "ΔPSNR to base at its precision" in (out / "results.md").read_text()
    bad = _bench(
        ["--load-config", str(config), "--precision", "tf32", "--output-dir", str(tmp_path / "b")],
        home,
        tmp_path,
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "error: --precision tf32 needs a CUDA device"
    )


def test_ahead_of_every_alternative_rule():
    def row(kind, t, psnr, gate=False):
        config = {"gate": gate, "upsample": False, "layer": 0, "in_box": False, "n_probe": None}
        return {
            "kind": kind,
            "t": t,
            "psnr": psnr,
            "time_ratio": t,
            "macs_ratio": t,
            "psnr_delta": psnr - 30,
            "config": config,
        }

    rows = {
        "base": row("base", 1.0, 30.0),
        "fast": row("alternative", 0.5, 29.0),
        "good": row("alternative", 0.8, 30.5),
        "ours a": row("ours", 0.5, 29.0),  # ties "fast": counts as ahead (as fast, PSNR as high)
        "ours b": row("ours", 0.7, 30.2),  # faster than "good" but 0.3 dB short
    }
    ahead = speed_quality.targets(rows)["ahead_of_every_alternative"]
    assert ahead["ahead"] == {"fast": ["ours a"], "good": []}
    assert ahead["not_ahead_of"] == ["good"] and ahead["met"] is False
    assert ahead["shortfall"]["good"]["best_as_fast"] == "ours b"
    assert ahead["shortfall"]["good"]["psnr_short_db"] == pytest.approx(0.3)


def test_fewer_coarse_samples_are_restored_and_counted(tiny_nerf, monkeypatch):
    config, home = tiny_nerf
    monkeypatch.setenv("TORCH_HOME", str(home))
    model = load_pipeline(config, device="cpu")[1].model
    c = model.config
    per_coarse, per_fine = linear_macs(model.field_coarse), linear_macs(model.field_fine)
    with speed_quality.coarse_samples(model, 2):
        assert model.sampler_uniform.num_samples == 2
        assert model.macs_per_ray(None) == 2 * per_coarse + (2 + c.num_importance_samples) * per_fine
    assert model.sampler_uniform.num_samples == c.num_coarse_samples == 8
    assert model.macs_per_ray(None) == 8 * per_coarse + (8 + c.num_importance_samples) * per_fine


def test_pareto_front_and_domination():
    rows = {
        "base": {"time_ratio": 1.0, "psnr": 30.0},
        "fast": {"time_ratio": 0.5, "psnr": 29.0},
        "worse": {"time_ratio": 0.6, "psnr": 28.0},  # slower and worse than "fast"
        "tie": {"time_ratio": 0.5, "psnr": 29.0},  # equal: neither dominates the other
    }
    assert speed_quality.dominated_by(rows["worse"], rows) == ["fast", "tie"]
    assert speed_quality.dominated_by(rows["tie"], rows) == []
    assert speed_quality.pareto_front(rows) == ["fast", "tie", "base"]


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
