"""Analysis figures (visualize.py), the activation gate of the models, and eval.py --gate."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfinternals import analysis, internals
from nerfinternals.data.synthetic import generate_blender_scene
from nerfinternals.estimators.activation import probe_image
from nerfinternals.eval import ActivationDerivedDensity, evaluate
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.visualize import Visualize, visualize
from tests.runs import REPO, camera_bundle, ray_samples, train

VISUALIZE_SCRIPT = str(REPO / "nerfinternals" / "visualize.py")
WIDTH, HEIGHT = 24, 20  # the trained scene: H != W


# ---- small models built in-process (no training): the gate on every model kind ----------------------
@pytest.mark.parametrize("kind", ["nerf", "mipnerf", "nerfacto", "nerfacto-stock"])
@pytest.mark.parametrize("upsample", [False, True])
def test_gate_admitting_every_pixel_reproduces_the_render_exactly(models, kind, upsample):
    model, bundle = models(kind), camera_bundle()
    full, _ = model.render_with_activations(bundle, 0, "std_half", upsample=upsample)
    gated, times = model.render_with_activations(
        bundle, 0, "std_half", upsample=upsample, gate=True, threshold=math.inf
    )
    assert set(times) == {"t_act", "t_coarse", "t_fine"}
    assert gated["gate_mask"].shape == (9, 13, 1) and gated["gate_mask"].dtype == torch.bool
    assert gated["gate_mask"].all()
    for name in ("rgb", "accumulation", "depth"):
        assert torch.equal(gated[name], full[name]), name


@pytest.mark.parametrize("kind", ["nerf", "mipnerf", "nerfacto", "nerfacto-stock"])
def test_stock_gate_admitting_every_pixel_reproduces_the_stock_render_exactly(models, kind):
    model, bundle = models(kind), camera_bundle()
    with torch.inference_mode():
        full = model.render_stock(bundle)
    gated, times = model.render_gated(bundle, 0, threshold=math.inf)
    assert set(times) == {"t_act", "t_render"}
    assert gated["gate_mask"].all()
    assert set(full) <= set(gated)
    for name, value in full.items():
        assert torch.equal(gated[name], value), name


@pytest.mark.parametrize("kind", ["nerf", "nerfacto"])
def test_gate_at_the_image_mean_skips_bright_pixels_with_the_background(models, kind):
    model, bundle = models(kind), camera_bundle()
    volume = probe_image(model, bundle, 1, model.num_probe_samples)
    expected_map = volume.mean(dim=-1)
    expected_mask = expected_map < expected_map.mean()
    assert 0 < int(expected_mask.sum()) < expected_mask.numel()

    full, _ = model.render_with_activations(bundle, 1, "std")
    gated, _ = model.render_with_activations(bundle, 1, "std", gate=True)
    stock_full = model.render_stock(bundle)
    stock_gated, _ = model.render_gated(bundle, 1)
    background = model.background_rgb()
    for out, ref, rgb in (
        (gated, full, "rgb"),
        (stock_gated, stock_full, "rgb_fine" if kind == "nerf" else "rgb"),
    ):
        assert torch.allclose(out["activation_map"][..., 0], expected_map)
        mask = out["gate_mask"][..., 0]
        assert torch.equal(mask, expected_mask)
        assert torch.equal(out[rgb][~mask], background.expand(int((~mask).sum()), 3))
        accumulations = [key for key in out if key.startswith("accumulation")]
        assert accumulations and all((out[key][~mask] == 0).all() for key in accumulations)
        # rendered pixels are the full render's (up to the chunking of the matrix products)
        assert torch.allclose(out[rgb][mask], ref[rgb][mask], atol=1e-5)


def test_gate_admitting_nothing_renders_only_background(models):
    model, bundle = models("nerf"), camera_bundle()
    gated, _ = model.render_with_activations(bundle, 0, "std", gate=True, threshold=-math.inf)
    assert not gated["gate_mask"].any()
    assert torch.equal(gated["rgb"], model.background_rgb().expand(9, 13, 3))
    assert (gated["accumulation"] == 0).all() and gated["depth"].shape == (9, 13, 1)


def test_gated_compute_accounting(models):
    model = models("nerf")
    full, half = model.macs_per_ray(0), model.macs_per_ray(0, rendered_fraction=0.5)
    probe = model.macs_per_ray(0, rendered_fraction=0.0)
    assert probe == internals.probe_macs(model.probe_mlp, 0) * model.num_probe_samples
    assert half == pytest.approx((full + probe) / 2)


@pytest.mark.parametrize("kind", ["nerf", "mipnerf", "nerfacto", "nerfacto-stock"])
def test_analysis_per_pixel_maps_and_ray_profiles(models, kind):
    model, bundle = models(kind), camera_bundle()
    networks = analysis.available_networks(model)
    assert networks == (["coarse"] if kind == "mipnerf" else ["coarse", "fine"])
    result = analysis.analyse_image(model, bundle, [0], ["std", "std_half_sq"], networks)
    for name in networks:
        assert result.maps[name, 0].shape == (9, 13)
    coarse = probe_image(model, bundle, 0, model.num_probe_samples).mean(dim=-1)
    assert torch.allclose(result.maps["coarse", 0], coarse, atol=1e-6)
    assert result.t_estimate[0, "std"].shape == (9, 13) and result.ray_length.shape == (9, 13)
    summary = result.argmax_distances()
    assert set(summary["layer_00"]) == {"std", "std_half_sq"}
    assert summary["layer_00"]["std"]["coarse"]["num_rays"] == 9 * 13

    (profile,) = analysis.ray_profiles(model, bundle, [(12, 3)], [0], ["std"])
    n = model.num_probe_samples
    assert profile.pixel == (12, 3) and profile.t.shape == (n,) and profile.sigma.shape == (n,)
    assert profile.features[0].shape[0] == n and profile.estimate[0, "std"].shape == (n,)
    # the profile is the same ray as pixel (12, 3) of the image pass
    assert torch.allclose(profile.features[0].mean(dim=-1).mean(), result.maps["coarse", 0][3, 12], atol=1e-6)
    assert float(profile.estimate_weights[0, "std"].sum()) == pytest.approx(1.0, abs=1e-5)


def test_mipnerf_has_no_separate_fine_network(models):
    with pytest.raises(ValueError, match="one network for both passes"):
        analysis.probes(models("mipnerf"), ["fine"])


# ---- the argmax-distance metric on hand-built rays -----------------------------------------------
def test_argmax_distance_on_a_hand_built_ray():
    samples = ray_samples(1)  # sample centres 2.25, 2.75, ..., 5.75
    t = analysis.sample_midpoints(samples)
    assert torch.allclose(t[0], torch.arange(8) * 0.5 + 2.25)
    v = torch.ones(1, 8)
    v[0, 2] = 0.0  # an activation minimum at t = 3.25
    estimate = internals.weights_from_density(samples, internals.density_from_activation(v, "std"))
    sigma = torch.zeros(1, 8, 1)
    sigma[0, 5] = 50.0  # the coarse network's surface at t = 4.75
    coarse = samples.get_weights(sigma)
    t_est, t_coarse = analysis.argmax_depth(t, estimate), analysis.argmax_depth(t, coarse)
    assert t_est.tolist() == [3.25] and t_coarse.tolist() == [4.75]
    length = analysis.ray_lengths(samples)
    assert length.tolist() == [4.0]
    s = analysis.distance_summary(t_est - t_coarse, length)
    assert s == {"num_rays": 1, "median": 1.5, "p90": 1.5, "median_share": 0.375, "p90_share": 0.375}
    gt = analysis.distance_summary(t_est - torch.tensor([3.4]), length)
    assert gt["median"] == pytest.approx(0.15, abs=1e-6) and gt["median_share"] == pytest.approx(0.15 / 4)


def test_argmax_distance_summary_and_references():
    distance = torch.arange(1.0, 11.0)  # 1..10
    length = torch.full((10,), 4.0)
    s = analysis.distance_summary(-distance, length)  # sign does not matter
    assert s["median"] == pytest.approx(5.5) and s["p90"] == pytest.approx(9.1)
    assert s["median_share"] == pytest.approx(5.5 / 4) and s["num_rays"] == 10
    valid = distance <= 3
    assert analysis.distance_summary(distance, length, valid)["median"] == pytest.approx(2.0)
    assert analysis.distance_summary(distance, length, torch.zeros(10, dtype=torch.bool))["median"] is None

    # an image of 2 x 2 rays: GT depth counts only where finite; "coarse_opaque" where the coarse weights sum >= 0.5
    image = analysis.ImageAnalysis(
        maps={},
        t_estimate={(0, "std"): torch.tensor([[3.0, 3.0], [4.0, 5.0]])},
        t_coarse=torch.tensor([[3.0, 2.0], [4.0, 4.0]]),
        coarse_accumulation=torch.tensor([[1.0, 0.1], [0.9, 0.2]]),
        ray_length=torch.full((2, 2), 4.0),
    )
    gt = torch.tensor([[3.5, math.inf], [math.inf, 4.0]])
    r = image.argmax_distances(gt)["layer_00"]["std"]
    assert r["coarse"]["num_rays"] == 4 and r["coarse"]["median"] == pytest.approx(0.5)
    assert r["coarse_opaque"]["num_rays"] == 2 and r["coarse_opaque"]["median"] == 0.0
    assert r["gt_depth"]["num_rays"] == 2 and r["gt_depth"]["median"] == pytest.approx(0.75)


def test_default_pixels_lie_on_the_object_and_one_on_the_background():
    mask = torch.zeros(10, 12, dtype=torch.bool)
    mask[3:7, 4:9] = True
    pixels = analysis.default_pixels(mask)
    assert len(pixels) == 4
    assert all(mask[y, x] for x, y in pixels[:3]) and not mask[pixels[3][1], pixels[3][0]]


# ---- a trained run: the command line ---------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("visualize")


@pytest.fixture(scope="module")
def home(work) -> Path:
    path = work / "torch_home_empty"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def scene(work) -> Path:
    """A 24 x 20 scene with GT depth beside the images."""
    return generate_blender_scene(
        work / "scene", "spheres", width=WIDTH, height=HEIGHT, num_train=6, num_val=2, num_test=2
    )


@pytest.fixture(scope="module")
def run(work, home, scene) -> Path:
    """config.yml of a tiny activation-nerf trained on ``scene``."""
    (work / "runs").mkdir()
    return train("activation-nerf", scene, work / "runs", home)


@pytest.fixture()
def offline(home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(home))


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def test_visualize_writes_every_figure(run, scene, offline):
    results = visualize(
        Visualize(
            device="cpu", load_config=run, layer=(0, 2), fct=(0, 1), network="both", pixels=("3,4", "20,15")
        )
    )
    out = run.parent / "visualize" / "000"
    # Fig. 2: one map per network and layer, the image's shape; the side-by-side figure
    for name in ("coarse", "fine"):
        for layer in (0, 2):
            assert _png_size(out / "maps" / f"{name}_layer_{layer:02d}.png") == (WIDTH, HEIGHT)
            raw = np.load(out / "maps" / f"{name}_layer_{layer:02d}.npy")
            assert raw.shape == (HEIGHT, WIDTH) and np.isfinite(raw).all() and raw.std() > 0
        w, h = _png_size(out / f"fig2_activation_maps_{name}.png")
        assert w >= 800 and h >= 300
    assert _png_size(out / "target.png") == (WIDTH, HEIGHT)
    # Fig. 3: the full and gated renders and the mask, the figure and the stats
    assert _png_size(out / "gate" / "full.png") == (WIDTH, HEIGHT)
    gate = json.loads((out / "gate.json").read_text())
    assert gate == results["gate"] and set(gate["layers"]) == {"layer_00", "layer_02"}
    for layer in ("00", "02"):
        entry = gate["layers"][f"layer_{layer}"]
        mask = np.asarray(Image.open(out / "gate" / f"layer_{layer}_mask.png"))
        assert mask.shape == (HEIGHT, WIDTH) and set(np.unique(mask)) <= {0, 255}
        assert entry["rays_rendered"] == int((mask == 255).sum()) and entry["rays_total"] == WIDTH * HEIGHT
        assert entry["fraction_skipped"] == pytest.approx(1 - entry["rays_rendered"] / (WIDTH * HEIGHT))
        assert 0 < entry["fraction_skipped"] < 1 and entry["t_gated"] > 0 and entry["t_full"] > 0
        assert math.isfinite(entry["psnr_vs_full"]) and math.isfinite(entry["psnr_vs_target"])
        assert _png_size(out / "gate" / f"layer_{layer}_gated.png") == (WIDTH, HEIGHT)
        assert _png_size(out / f"fig3_gate_layer_{layer}.png")[0] >= 1000
    # Fig. 4: one figure per pixel and layer, the plotted data as JSON, GT depth from the scene
    for x, y in ((3, 4), (20, 15)):
        data = json.loads((out / "rays" / f"x{x:03d}_y{y:03d}.json").read_text())
        assert data["pixel"] == {"x": x, "y": y} and len(data["t"]) == 8 and len(data["sigma_coarse"]) == 8
        assert set(data["d_hat"]) == {
            "layer_00/std",
            "layer_00/std_half",
            "layer_02/std",
            "layer_02/std_half",
        }
        for layer in ("00", "02"):
            assert _png_size(out / f"fig4_ray_x{x:03d}_y{y:03d}_layer_{layer}.png") == (800, 800)
    depth = np.load(scene / "test" / "r_0_depth.npy")
    gt_json = json.loads((out / "rays" / "x020_y015.json").read_text())["gt_depth"]
    assert (gt_json is None and not np.isfinite(depth[15, 20])) or gt_json == pytest.approx(
        float(depth[15, 20])
    )
    # the argmax check, with GT depth on the pixels that hit something
    argmax = json.loads((out / "argmax_distance.json").read_text())
    assert argmax["results"] == results["argmax_distance"]
    std = argmax["results"]["layer_00"]["std"]
    assert std["coarse"]["num_rays"] == WIDTH * HEIGHT
    assert std["gt_depth"]["num_rays"] == int(np.isfinite(depth).sum()) > 0
    assert 0 <= std["gt_depth"]["median"] <= std["gt_depth"]["p90"] <= 4.0
    # nothing next to the checkpoint
    assert sorted(p.name for p in (run.parent / "nerfstudio_models").iterdir()) == ["step-000000003.ckpt"]


def test_visualize_default_pixels_and_selected_figures(run, offline, tmp_path):
    visualize(
        Visualize(
            device="cpu", load_config=run, layer=(1,), fct=(2,), figures=("rays",), output_dir=str(tmp_path)
        )
    )
    out = tmp_path / "000"
    figures = sorted(p.name for p in out.glob("fig4_*.png"))
    assert len(figures) == 4  # three on the object, one on the background
    assert not (out / "gate").exists() and not (out / "maps").exists()
    pixels = [json.loads(p.read_text())["gt_depth"] for p in sorted((out / "rays").glob("*.json"))]
    assert sum(d is None for d in pixels) == 1  # json null: the background pixel (GT depth inf)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"network": "sideways"}, "unknown --network 'sideways': choose coarse, fine or both"),
        ({"pixels": ("24,3",)}, r"pixel 24,3 is outside the 24 x 20 image \(x in 0\.\.23, y in 0\.\.19\)"),
        ({"pixels": ("3;4",)}, "--pixels '3;4' is not of the form x,y"),
        ({"layer": (0, 4)}, r"--layer 4 is out of range for the coarse network .* valid layers are 0\.\.3"),
        ({"image_idx": 2}, r"--image-idx 2 is out of range: the eval split has 2 image\(s\)"),
        ({"fct": (5,)}, r"--fct 5 is out of range"),
        ({"figures": ("maps", "movie")}, "unknown --figures 'movie'"),
        ({"output_dir": "nerfstudio_models"}, "inside the checkpoint folder"),
    ],
)
def test_visualize_bad_input_writes_nothing(run, offline, kwargs, message):
    cfg = Visualize(device="cpu", load_config=run, **{"output_dir": "bad-input", **kwargs})
    before = sorted(p.relative_to(run.parent) for p in run.parent.rglob("*"))
    with pytest.raises(InputError, match=message):
        visualize(cfg)
    assert sorted(p.relative_to(run.parent) for p in run.parent.rglob("*")) == before


def test_visualize_refuses_a_non_empty_folder(run, offline):
    busy = run.parent / "busy-vis"
    busy.mkdir()
    (busy / "keep.txt").write_text("earlier results")
    with pytest.raises(InputError, match="not empty: pass --overwrite"):
        visualize(Visualize(device="cpu", load_config=run, output_dir="busy-vis"))
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]


def test_visualize_cli_errors_are_one_line(run, home, work):
    result = subprocess.run(
        [
            sys.executable,
            VISUALIZE_SCRIPT,
            "--load-config",
            str(run),
            "--pixels",
            "3,99",
            "--output-dir",
            "cli",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        cwd=work,
        env={**os.environ, "TORCH_HOME": str(home)},
        timeout=300,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: pixel 3,99 is outside the 24 x 20 image (x in 0..23, y in 0..19)"]
    assert "Traceback" not in result.stderr and not (run.parent / "cli").exists()


def test_visualize_help_documents_the_flags():
    result = subprocess.run(
        [sys.executable, VISUALIZE_SCRIPT, "-h"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0
    for flag in (
        "--load-config",
        "--layer",
        "--fct",
        "--network",
        "--image-idx",
        "--pixels",
        "--figures",
        "--output-dir",
        "--overwrite",
    ):
        assert flag in result.stdout


# ---- eval.py --gate ---------------------------------------------------------------------------------
def test_eval_gate_writes_the_gate_stats(run, offline):
    summary = evaluate(
        ActivationDerivedDensity(
            device="cpu", load_config=run, layer=(1,), fct=(1,), gate=True, output_dir="eval-gate"
        )
    )
    name = "layer_01_ups_0_fct_std_half_gate"
    root = run.parent / "eval-gate"
    skipped = []
    for image in ("000", "001"):
        stats = json.loads((root / image / "stats.json").read_text())
        assert set(stats) == {"base", name}
        assert set(stats[name]["metrics"]["quantitative"]) == {"t_act", "t_coarse", "t_fine"}
        gate = stats[name]["gate"]
        mask = np.asarray(Image.open(root / image / name / "gate_mask.png"))
        assert mask.shape == (HEIGHT, WIDTH) and gate["rays_total"] == WIDTH * HEIGHT
        assert gate["rays_rendered"] == int((mask == 255).sum())
        assert gate["fraction_skipped"] == pytest.approx(1 - gate["rays_rendered"] / (WIDTH * HEIGHT))
        assert json.loads((root / image / name / "stats.json").read_text())["gate"] == gate
        skipped.append(gate["fraction_skipped"])
    exp = summary["experiments"][name]
    assert exp["fraction_skipped"] == pytest.approx(sum(skipped) / 2) and 0 < exp["fraction_skipped"] < 1
    _, pipeline, _, _ = load_pipeline(run, device="cpu")
    pixels = WIDTH * HEIGHT
    ungated = pipeline.model.macs_per_ray(1) * pixels
    assert exp["macs"] < ungated
    assert exp["macs"] == pytest.approx(
        pipeline.model.macs_per_ray(1, rendered_fraction=1 - exp["fraction_skipped"]) * pixels
    )
