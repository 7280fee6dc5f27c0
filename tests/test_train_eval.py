"""Tiny runs through ``ns-train``, reloaded with nerfstudio's eval_setup and evaluated with eval.py."""

from __future__ import annotations

import json
import math
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nerfinternals.data.synthetic import generate_blender_scene
from nerfinternals.eval import ActivationDerivedDensity, evaluate
from nerfinternals.loading import InputError
from tests.runs import NS_TRAIN, link_standin_alexnet, run_eval, train

OURS = ["activation-nerf", "activation-mipnerf", "activation-nerfacto"]


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="session")
def offline_home(work) -> Path:
    home = work / "torch_home_empty"
    home.mkdir()
    return home


@pytest.fixture(scope="session")
def standin_home(work, standin_alexnet_file) -> Path:
    """A torch hub holding a random AlexNet under the real file name: stock models build offline."""
    return link_standin_alexnet(work / "torch_home_standin", standin_alexnet_file)


@pytest.fixture(scope="session")
def scene(work) -> Path:
    return generate_blender_scene(
        work / "scene", "spheres", width=24, height=24, num_train=8, num_val=2, num_test=2
    )


@pytest.fixture(scope="session")
def trained(work, scene, offline_home, standin_home):
    """method -> config.yml of a tiny run (trained once per session)."""
    cache: dict[str, Path] = {}

    def get(method: str, data: Path | None = None, tag: str = "") -> Path:
        key = method + tag
        if key not in cache:
            out = work / f"runs{tag}"
            out.mkdir(exist_ok=True)
            # Stock models build torchmetrics' LPIPS, which needs the AlexNet file; ours must not.
            home = standin_home if method in ("vanilla-nerf", "nerfacto") else offline_home
            cache[key] = train(method, data or scene, out, home)
        return cache[key]

    return get


def test_ns_train_lists_the_three_methods():
    result = subprocess.run([NS_TRAIN, "-h"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for method, name in zip(OURS, ["NeRF", "Mip-NeRF", "nerfacto"], strict=True):
        assert method in text
        assert f"Using Activations to infer Depth, {name}." in text


@pytest.mark.parametrize("method", OURS)
def test_trains_offline_and_reloads_with_eval_setup(method, trained, offline_home, monkeypatch):
    from nerfstudio.utils.eval_utils import eval_setup

    config = trained(method)
    assert list((config.parent / "nerfstudio_models").glob("step-*.ckpt"))
    assert not any(offline_home.rglob("*")), "training must not download anything"
    monkeypatch.setenv("TORCH_HOME", str(offline_home))
    _, pipeline, _, step = eval_setup(config)
    assert type(pipeline.model).__name__.startswith("Activation")
    assert step == 3


def _check_outputs(config: Path, output: str, experiments: list[str], size: tuple[int, int]) -> dict:
    root = config.parent / output
    summary = json.loads((root / "summary.json").read_text())
    image_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    assert [p.name for p in image_dirs] == ["000", "001"]
    for image_dir in image_dirs:
        assert (image_dir / "coarse-to-fine.png").is_file() and (image_dir / "target.png").is_file()
        stats = json.loads((image_dir / "stats.json").read_text())
        assert set(stats) == {"base", *experiments}
        assert set(stats["base"]) == {"t", "metrics"} and set(stats["base"]["metrics"]) == {
            "psnr",
            "ssim",
            "lpips",
        }
        for name in experiments:
            metrics = stats[name]["metrics"]
            assert set(metrics) == {"psnr", "ssim", "lpips", "quantitative"}
            assert set(metrics["quantitative"]) == {"t_act", "t_coarse", "t_fine"}
            assert metrics["quantitative"]["t_coarse"] == 0.0
            assert math.isfinite(metrics["psnr"]) and metrics["lpips"] is None  # offline
            with Image.open(image_dir / name / "ours.png") as img:
                assert img.size == size
            assert (image_dir / name / "target.png").is_file()
            assert "optimized" in json.loads((image_dir / name / "stats.json").read_text())
    assert set(summary["experiments"]) == set(experiments)
    return summary


@pytest.mark.parametrize("method", OURS)
def test_eval_end_to_end(method, trained, offline_home, work):
    config = trained(method)
    result = run_eval(
        ["--load-config", str(config), "--layer", "0", "1", "--fct", "0", "2"], offline_home, work
    )
    assert result.returncode == 0, result.stderr[-3000:]
    experiments = [f"layer_{layer:02d}_ups_0_fct_{fct}" for layer in (0, 1) for fct in ("std", "std_half_sq")]
    summary = _check_outputs(config, "eval", experiments, (24, 24))
    assert summary["method"] == method and summary["num_images"] == 2
    for exp in summary["experiments"].values():
        assert math.isfinite(exp["psnr"]) and exp["time_ratio"] > 0
        assert exp["macs"] < summary["base"]["macs"]
    assert "layer_00_ups_0_fct_std" in result.stdout  # the printed table


@pytest.fixture(scope="session")
def wide(work) -> Path:
    """A 28 x 20 px scene: H != W."""
    return generate_blender_scene(
        work / "wide", "mixed", width=28, height=20, num_train=6, num_val=2, num_test=2
    )


def test_eval_upsample_on_non_square_images(trained, work, wide, offline_home):
    config = trained("activation-nerf", data=wide, tag="-wide")
    result = run_eval(
        ["--load-config", str(config), "--layer", "1", "--fct", "1", "--upsample", "--output-dir", "ups"],
        offline_home,
        work,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _check_outputs(config, "ups", ["layer_01_ups_1_fct_std_half"], (28, 20))


def test_eval_rescale_probe_options_and_precision(trained, wide, offline_home, monkeypatch):
    """--rescale renders smaller images against area-averaged targets; the sampling options name their
    experiments; --precision fp32 reproduces the default run exactly."""
    from nerfinternals.common import resize_image

    monkeypatch.setenv("TORCH_HOME", str(offline_home))
    config = trained("activation-nerf", data=wide, tag="-wide")
    common = dict(load_config=config, layer=(1,), fct=(1,), device="cpu", overwrite=True)
    name = "layer_01_ups_0_fct_std_half_n4_box"
    half = evaluate(
        ActivationDerivedDensity(**common, rescale=0.5, probe_samples=4, in_box=True, output_dir="half")
    )
    assert half["image_shape"] == [10, 14] and half["settings"]["rescale"] == 0.5
    # base and ours rendered with the steady allocator, the default (tests/test_allocator.py: what it does)
    assert half["settings"]["allocator"] == ("steady" if platform.libc_ver()[0] == "glibc" else "default")
    assert list(half["experiments"]) == [name]
    assert half["experiments"][name]["render"] == {
        "layer": 1,
        "fct": "std_half",
        "upsample": False,
        "gate": False,
        "n_probe": 4,
        "in_box": True,
        "sampler": "activation",
        "fine_samples": 0,
        "skip_empty": False,
        "empty_threshold": 1e-3,
        "grid_resolution": 64,
        "initial_samples": 0,
    }
    root = config.parent / "half" / "000"
    with Image.open(root / name / "ours.png") as img:
        assert img.size == (14, 10)
    full_target = np.asarray(Image.open(wide / "test" / "r_0.png").convert("RGBA"), dtype=np.float32) / 255
    rgb = full_target[..., :3] * full_target[..., 3:] + (1 - full_target[..., 3:])  # white background
    expected = resize_image(torch.from_numpy(rgb), 10, 14)  # 2 x 2 box averages
    written = np.asarray(Image.open(root / "target.png"), dtype=np.float32) / 255
    assert np.abs(written - expected.numpy()).max() <= 1 / 255 + 1e-6
    plain = evaluate(ActivationDerivedDensity(**common, output_dir="plain"))
    fp32 = evaluate(ActivationDerivedDensity(**common, precision="fp32", output_dir="fp32"))
    key = "layer_01_ups_0_fct_std_half"
    for which in ("base", key):
        a = plain["base"] if which == "base" else plain["experiments"][key]
        b = fp32["base"] if which == "base" else fp32["experiments"][key]
        assert a["psnr"] == b["psnr"] and a["ssim"] == b["ssim"]
    with pytest.raises(InputError, match=r"--rescale must be in \(0, 1\]"):
        evaluate(ActivationDerivedDensity(**common, rescale=1.5, output_dir="bad"))
    with pytest.raises(InputError, match="tf32 needs a CUDA device"):
        evaluate(ActivationDerivedDensity(**common, precision="tf32", output_dir="bad"))
    assert not (config.parent / "bad").exists()


@pytest.mark.parametrize("method", ["vanilla-nerf", "nerfacto"])
def test_eval_stock_checkpoints(method, trained, offline_home, work, tmp_path):
    config = trained(method)
    out = tmp_path / "stock-eval"  # absolute --output-dir
    result = run_eval(
        ["--load-config", str(config), "--layer", "0", "--fct", "1", "--output-dir", str(out)],
        offline_home,
        work,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == method
    assert (
        summary["model"]
        == {"vanilla-nerf": "ActivationNeRFModel", "nerfacto": "ActivationNerfactoModel"}[method]
    )
    assert math.isfinite(summary["experiments"]["layer_00_ups_0_fct_std_half"]["psnr"])


# ---- bad input: one clear line, non-zero exit, nothing written -------------------------------------
def _expect_error(match: str, **kwargs) -> None:
    cfg = ActivationDerivedDensity(**{"device": "cpu", **kwargs})
    out = Path(cfg.load_config).parent / cfg.output_dir
    existed = out.exists()
    with pytest.raises(InputError, match=match):
        evaluate(cfg)
    assert out.exists() == existed, "nothing may be written on bad input"


def test_bad_config_paths(tmp_path, offline_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(offline_home))
    _expect_error("config not found", load_config=tmp_path / "nope.yml", output_dir="o1")
    (tmp_path / "plain.yml").write_text("a: 1\n")
    _expect_error("not a nerfstudio config", load_config=tmp_path / "plain.yml", output_dir="o2")
    (tmp_path / "broken.yml").write_text("a: [\n")
    _expect_error("not a nerfstudio config", load_config=tmp_path / "broken.yml", output_dir="o3")


def test_bad_checkpoints_and_methods(trained, tmp_path, offline_home, monkeypatch):
    from nerfstudio.configs.method_configs import all_methods

    monkeypatch.setenv("TORCH_HOME", str(offline_home))
    config = trained("activation-nerf")
    moved = tmp_path / "no-ckpt-dir"
    moved.mkdir()
    shutil.copy(config, moved / "config.yml")
    _expect_error("checkpoint directory not found", load_config=moved / "config.yml")
    (moved / "nerfstudio_models").mkdir()
    _expect_error("no checkpoint", load_config=moved / "config.yml")

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.yml").write_text(yaml.dump(all_methods["instant-ngp"]))
    _expect_error(
        "unsupported method 'instant-ngp': supported are activation-nerf", load_config=other / "config.yml"
    )


def test_bad_layer_fct_and_output(trained, offline_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(offline_home))
    config = trained("activation-nerf")  # tiny NeRF: 4-layer position MLP
    _expect_error(
        r"--layer 4 is out of range .* valid layers are 0\.\.3",
        load_config=config,
        layer=(0, 4),
        output_dir="e1",
    )
    _expect_error(
        r"--fct 3 is out of range: choose from 0\.\.2", load_config=config, fct=(3,), output_dir="e2"
    )
    # SSIM's 11 px window reflect-pads 5 px a side: a side of 5 px or less cannot be measured (one line,
    # before anything is rendered, not torchmetrics' error from inside the metrics)
    _expect_error(
        r"--rescale 0.2 renders the smallest eval image \((\d+) x \1 px\) at \d x \d px: SSIM needs at "
        r"least 6 px a side \(--rescale 0\.\d+ or more\)",
        load_config=config,
        rescale=0.2,
        output_dir="e3",
    )
    _expect_error("inside the checkpoint folder", load_config=config, output_dir="nerfstudio_models/x")
    busy = config.parent / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("results of an earlier run")
    _expect_error("not empty: pass --overwrite", load_config=config, output_dir="busy")
    assert (busy / "keep.txt").read_text() == "results of an earlier run"


def test_empty_eval_split(trained, scene, tmp_path, offline_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(offline_home))
    config = trained("activation-nerf")
    data = tmp_path / "scene"
    shutil.copytree(scene, data)
    meta = json.loads((data / "transforms_test.json").read_text())
    (data / "transforms_test.json").write_text(json.dumps({**meta, "frames": []}))
    run = tmp_path / "run"
    shutil.copytree(config.parent, run, ignore=shutil.ignore_patterns("eval*"))
    run_config = yaml.load((run / "config.yml").read_text(), Loader=yaml.Loader)
    run_config.pipeline.datamanager.data = data
    (run / "config.yml").write_text(yaml.dump(run_config))
    # nerfstudio's Blender parser cannot set up an empty split: reported as a data problem.
    _expect_error(f"could not set up the run's data from {data}", load_config=run / "config.yml")


def test_eval_samplers_budgets_and_skipping(trained, offline_home, work):
    """One experiment per sampler x budget, each skipping empty rays; summary.json records what ran, the PNGs
    hold what a stock render gives, the PSNRs are the ones computed by hand."""
    config = trained("activation-nerf")
    args = ["--load-config", str(config), "--layer", "1", "--fct", "1", "--output-dir", "samplers"]
    args += ["--sampler", "activation", "grid", "hybrid", "stock", "--fine-samples", "0", "4"]
    args += ["--skip-empty", "--grid-resolution", "8"]
    result = run_eval(args, offline_home, work)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((config.parent / "samplers" / "summary.json").read_text())
    expected = {
        "layer_01_ups_0_fct_std_half_skip": ("activation", 0),
        "layer_01_ups_0_fct_std_half_k4_skip": ("activation", 4),
        "hybrid8_layer_01_ups_0_fct_std_half_skip": ("hybrid", 0),
        "hybrid8_layer_01_ups_0_fct_std_half_k4_skip": ("hybrid", 4),
        "grid8_skip": ("grid", 0),
        "grid8_k4_skip": ("grid", 4),
        "stock_skip": ("stock", 0),
        "stock_k4_skip": ("stock", 4),
    }
    assert set(summary["experiments"]) == set(expected)
    for name, (sampler, k) in expected.items():
        exp = summary["experiments"][name]
        assert (exp["render"]["sampler"], exp["render"]["fine_samples"], exp["render"]["skip_empty"]) == (
            sampler,
            k,
            True,
        )
        assert (
            exp["time_ratio"] > 0 and math.isfinite(exp["psnr_delta"]) and 0 <= exp["fraction_skipped"] <= 1
        )
        stats = json.loads((config.parent / "samplers" / "000" / name / "stats.json").read_text())
        assert "gate" in stats and (config.parent / "samplers" / "000" / name / "gate_mask.png").is_file()
    assert set(summary["grids"]) == {"8"} and summary["grids"]["8"]["evaluations"] == 8**3
    assert summary["grids"]["8"]["fill_seconds"] > 0
    per_image = json.loads((config.parent / "samplers" / "000" / "stats.json").read_text())
    assert per_image["stock_k4_skip"]["metrics"]["quantitative"]["t_coarse"] > 0  # the coarse network ran
    assert per_image["grid8_k4_skip"]["metrics"]["quantitative"]["t_coarse"] == 0
    # a 4-sample final pass against the 8 + 8 + 1 of stock: fewer multiply-adds
    assert summary["experiments"]["stock_k4_skip"]["macs"] < summary["base"]["macs"]

    # What was rendered, against references computed here: nerfstudio's stock render of the test image (in
    # this process), the ground-truth PNG composited over white by hand, PSNR by hand.
    from nerfinternals.common import camera_rays
    from nerfinternals.loading import load_pipeline

    folder = config.parent / "samplers" / "000"

    def png(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image, dtype=np.float64) / 255

    pipeline = load_pipeline(config, device="cpu")[1]
    camera = pipeline.datamanager.fixed_indices_eval_dataloader.cameras[0:1]
    with torch.no_grad():
        stock = pipeline.model.render_stock(camera_rays(camera))["rgb_fine"].clamp(0, 1).numpy()
    assert np.abs(png(folder / "coarse-to-fine.png") - stock).max() <= 0.5 / 255 + 1e-6  # 8-bit rounding
    gt = png(Path(pipeline.datamanager.eval_dataset.image_filenames[0]))  # RGBA, the scene's white background
    gt = gt[..., :3] * gt[..., 3:] + (1.0 - gt[..., 3:])
    for name in ("stock_skip", "grid8_skip"):
        kept = png(folder / name / "gate_mask.png") > 0.5
        ours = png(folder / name / "ours.png")
        assert (ours[~kept] == 1.0).all(), name  # the skipped rays: background
        if name == "stock_skip":  # the stock sampler at the model's budget: stock's pixels where it renders
            assert np.array_equal(ours[kept], png(folder / "coarse-to-fine.png")[kept])
            expected = np.where(kept[..., None], stock, 1.0)
            mse = np.mean((expected - gt) ** 2)
            psnr = json.loads((folder / name / "stats.json").read_text())["optimized"]["psnr"]
            assert psnr == pytest.approx(-10 * np.log10(mse), abs=1e-3)
        stats = json.loads((folder / name / "stats.json").read_text())
        assert stats["gate"]["rays_rendered"] == int(kept.sum()) and stats["gate"]["rays_total"] == kept.size
    base_psnr = json.loads((folder / "stats.json").read_text())["base"]["metrics"]["psnr"]
    assert base_psnr == pytest.approx(-10 * np.log10(np.mean((stock - gt) ** 2)), abs=1e-3)


def test_eval_initial_samples_apply_to_the_grid_experiments(trained, offline_home, work):
    """--initial-samples 4: the grid experiment weighs 4 uniform samples per ray (its folder says so, and its
    final pass is the stock NeRF fine pass on 4 + 8 + 1 samples: fewer multiply-adds than on 8 + 8 + 1); the
    activation experiment of the same call keeps the coarse network's 8."""
    config = trained("activation-nerf")
    args = ["--load-config", str(config), "--layer", "1", "--fct", "1", "--output-dir", "initial"]
    args += ["--sampler", "activation", "grid", "--grid-resolution", "8", "--initial-samples", "4"]
    result = run_eval(args, offline_home, work)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((config.parent / "initial" / "summary.json").read_text())
    assert set(summary["experiments"]) == {"layer_01_ups_0_fct_std_half", "grid8_n4"}
    grid = summary["experiments"]["grid8_n4"]
    assert grid["render"]["initial_samples"] == 4 and grid["render"]["sampler"] == "grid"
    assert summary["experiments"]["layer_01_ups_0_fct_std_half"]["render"]["initial_samples"] == 0
    from nerfinternals.internals import linear_macs
    from nerfinternals.loading import load_pipeline

    model = load_pipeline(config, device="cpu")[1].model
    coarse, fine = linear_macs(model.field_coarse), linear_macs(model.field_fine)
    # the grid's look-ups are no multiply-adds; stock: 8 coarse samples, then 8 + 8 + 1 fine ones
    assert grid["macs_ratio"] == pytest.approx((4 + 8 + 1) * fine / (8 * coarse + (8 + 8 + 1) * fine))
    assert (
        math.isfinite(grid["psnr_delta"])
        and (config.parent / "initial" / "000" / "grid8_n4" / "ours.png").is_file()
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--fine-samples", "1"],
            "error: --fine-samples must be 0 (the model's own count) or at least 2, got 1",
        ),
        (["--fine-samples", "-8"], "error: --fine-samples must be 0"),
        (["--grid-resolution", "1"], "error: --grid-resolution must be at least 2, got 1"),
        (["--grid-resolution", "100000"], "error: --grid-resolution 100000 needs"),
        (["--sampler", "occupancy"], "error: "),
        (["--empty-threshold", "-1"], "error: --empty-threshold must be at least 0"),
        (
            ["--initial-samples", "1"],
            "error: --initial-samples must be 0 (the replaced network's count) or at least 2",
        ),
    ],
)
def test_bad_sampler_flags_are_one_line(trained, offline_home, work, args, message):
    config = trained("activation-nerf")
    result = run_eval(
        ["--load-config", str(config), "--output-dir", "bad-sampler", *args], offline_home, work
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(message) and "Traceback" not in result.stderr
    assert not (config.parent / "bad-sampler").exists()


def test_cli_errors_are_one_line(trained, offline_home, work, tmp_path):
    config = trained("activation-nerf")
    for args, message in [
        (["--load-config", str(tmp_path / "missing.yml")], "error: config not found"),
        (
            ["--load-config", str(config), "--layer", "7", "--output-dir", "cli-bad"],
            "error: --layer 7 is out of range",
        ),
    ]:
        result = run_eval(args, offline_home, work)
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and lines[0].startswith(message)
        assert "Traceback" not in result.stderr
    assert not (config.parent / "cli-bad").exists()


def test_eval_help_documents_the_flags(work):
    result = subprocess.run(
        [sys.executable, str(Path(__file__).parents[1] / "nerfinternals" / "eval.py"), "-h"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0
    for flag in (
        "--load-config",
        "--layer",
        "--fct",
        "--upsample",
        "--no-upsample",
        "--run-normal",
        "--no-run-normal",
        "--output-dir",
    ):
        assert flag in result.stdout
