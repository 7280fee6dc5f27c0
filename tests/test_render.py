"""``ns-internals-render`` (ns-render / ns-eval / ns-viewer with the inference setting) and ``--auto``, on a shipped run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mediapy
import numpy as np
import pytest
import torch
from nerfstudio.cameras.camera_paths import get_interpolated_camera_path

from nerfinternals import render
from nerfinternals.common import camera_rays, eval_views
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.metrics import image_metrics
from tests.runs import REPO

BIN = Path(sys.executable).parent
RUN = Path("outputs/demo/spheres/activation-nerf/run/config.yml")  # relative to the repository root
STEPS = 2  # 4 eval cameras -> 6 frames

pytestmark = pytest.mark.skipif(not (REPO / RUN).is_file(), reason="no shipped activation-nerf run")


@pytest.fixture(scope="module", autouse=True)
def scene():
    from nerfinternals.demo import DEMO_SCENE, ensure_scene

    return ensure_scene(REPO / DEMO_SCENE)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("torch_home")


@pytest.fixture(scope="module")
def pipeline(scene, home):
    """The shipped run, loaded as the renderer loads it (test split, CPU)."""
    old = os.getcwd()
    os.chdir(REPO)
    try:
        return load_pipeline(RUN, device="cpu")[1]
    finally:
        os.chdir(old)


def ns(command: str, args: list[str], home: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """A console script of the venv, run from the repository root on the CPU."""
    env = {**os.environ, "TORCH_HOME": str(home), "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    return subprocess.run(
        [str(BIN / command), *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=600
    )


def cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """``ns-internals-render ARGS`` in this process (from the repository root, on the CPU): exit code, stdout, stderr."""
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", ["ns-internals-render", *args])
    capsys.readouterr()
    try:
        render.entrypoint()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code: int, err: str) -> str:
    assert code == 2, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
    return errors[0]


def frames(folder: Path) -> list[np.ndarray]:
    return [mediapy.read_image(p) for p in sorted(folder.glob("*.png"))]


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return errors[0]


def _path(pipeline):
    cameras = pipeline.datamanager.eval_dataset.cameras
    return get_interpolated_camera_path(cameras, steps=STEPS, order_poses=False)


def test_interpolate_writes_frames_of_activation_informed_sampling(pipeline, home, tmp_path):
    out = tmp_path / "frames"
    result = ns(
        "ns-internals-render",
        ["interpolate", "--load-config", str(RUN), "--output-path", str(out), "--output-format", "images"]
        + ["--image-format", "png", "--layer", "1", "--fct", "1", "--interpolation-steps", str(STEPS)],
        home,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "activation sampler: layer 1, std_half, fp32" in result.stdout
    assert "6 frame(s)" in result.stdout and "s per frame" in result.stdout
    written = frames(out)
    path = _path(pipeline)
    assert len(written) == len(path) == 6
    model = pipeline.model
    for i, frame in enumerate(written):
        expected, _ = model.render_with_activations(camera_rays(path[i : i + 1]), 1, "std_half")
        expected = mediapy.to_uint8(expected["rgb"].clamp(0, 1).numpy())
        assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 1, i
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]  # no staging folder left


def test_stock_sampler_writes_ns_renders_frames(home, tmp_path):
    """The same command with --inference-sampler stock, against nerfstudio's own ns-render."""
    import imageio_ffmpeg

    tools = tmp_path / "bin"  # ns-render insists on an `ffmpeg` on PATH, even for images
    tools.mkdir()
    (tools / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    common = ["--load-config", str(RUN), "--output-format", "images", "--image-format", "png"]
    common += ["--interpolation-steps", str(STEPS)]
    theirs = ns(
        "ns-render",
        ["interpolate", *common, "--output-path", str(tmp_path / "theirs")],
        home,
        env={"PATH": f"{tools}:{os.environ['PATH']}"},
    )
    assert theirs.returncode == 0, theirs.stderr[-3000:]
    ours = ns(
        "ns-internals-render",
        ["interpolate", *common, "--output-path", str(tmp_path / "ours"), "--inference-sampler", "stock"],
        home,
    )
    assert ours.returncode == 0, ours.stderr[-3000:]
    a, b = frames(tmp_path / "theirs"), frames(tmp_path / "ours")
    assert len(a) == len(b) == 6
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_video_and_overwrite(home, tmp_path, capsys, monkeypatch):
    video = tmp_path / "render.mp4"
    args = [
        "spiral",
        "--load-config",
        str(RUN),
        "--output-path",
        str(video),
        "--seconds",
        "0.25",
        "--device",
        "cpu",
    ]
    code, out, err = cli(args + ["--precision", "bf16"], capsys, monkeypatch)
    assert code == 0, err[-3000:]
    assert "activation sampler: layer 1, std_half, bf16" in out
    import av

    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6  # 24 fps x 0.25 s
    stamp = video.stat().st_mtime_ns
    code, _, err = cli(args, capsys, monkeypatch)
    assert (
        one_error(code, err)
        == f"error: {video} exists: pass --overwrite True or choose another --output-path"
    )
    assert video.stat().st_mtime_ns == stamp
    code, _, _ = cli(args + ["--overwrite", "True"], capsys, monkeypatch)
    assert code == 0 and video.stat().st_mtime_ns != stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["render.mp4"]


def test_video_without_ffmpeg_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(render, "_ffmpeg", lambda: None)
    out = tmp_path / "v.mp4"
    monkeypatch.setattr(
        sys,
        "argv",
        ["ns-internals-render", "interpolate", "--load-config", str(RUN), "--output-path", str(out)],
    )
    with pytest.raises(SystemExit) as exit_:
        render.entrypoint()
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --output-format video needs ffmpeg: install it (apt install ffmpeg, or pip install imageio-ffmpeg), "
        "or write frames with --output-format images"
    ]
    assert not out.exists() and not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["nope"],
            "error: Unrecognized options: nope; Available subcommands: camera-path, interpolate, spiral, eval, viewer",
        ),
        (["interpolate", "--precision", "fp64"], "error: invalid choice 'fp64' for argument '--precision'"),
        (
            ["camera-path", "--camera-path-filename", "missing.json"],
            "error: camera path not found: missing.json",
        ),
        (["interpolate", "--interpolation-steps", "0"], "error: --interpolation-steps must be at least 1"),
        (["interpolate", "--fct", "3"], "error: --fct 3 is out of range"),
        (["interpolate", "--precision", "tf32"], "error: --precision tf32 needs a CUDA device"),
        (["eval", "--output-path", "scores.txt"], "error: --output-path must end in .json"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(args, message, tmp_path, capsys, monkeypatch):
    if args != ["nope"]:
        args = [*args, "--load-config", str(RUN), "--device", "cpu"]
        args += [] if "--output-path" in args else ["--output-path", str(tmp_path / "out")]
    code, _, err = cli(args, capsys, monkeypatch)
    assert one_error(code, err).startswith(message)
    assert not any(tmp_path.iterdir())


def test_malformed_camera_path_bad_layer_and_output_name_write_nothing(scene, tmp_path, capsys, monkeypatch):
    path = tmp_path / "path.json"
    path.write_text(json.dumps({"seconds": 1, "render_height": 8}))
    out = tmp_path / "frames"
    base = [
        "--load-config",
        str(RUN),
        "--output-path",
        str(out),
        "--output-format",
        "images",
        "--device",
        "cpu",
    ]
    code, _, err = cli(["camera-path", *base, "--camera-path-filename", str(path)], capsys, monkeypatch)
    assert one_error(code, err).startswith(f"error: not a camera path file: {path} (KeyError")
    code, _, err = cli(["interpolate", *base, "--layer", "8"], capsys, monkeypatch)
    assert one_error(code, err) == "error: --layer 8 is out of range for this model: valid layers are 0..7"
    args = ["interpolate", *base, "--rendered-output-names", "normals", "--interpolation-steps", "1"]
    code, _, err = cli(args, capsys, monkeypatch)
    assert one_error(code, err).startswith(
        "error: --rendered-output-names normals is not an output of this model"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["path.json"]  # nothing half-written


def test_eval_subcommand_writes_ns_evals_json_with_the_setting(pipeline, home, tmp_path):
    out = tmp_path / "scores.json"
    result = ns(
        "ns-internals-render",
        ["eval", "--load-config", str(RUN), "--output-path", str(out), "--layer", "2", "--fct", "2"],
        home,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(out.read_text())
    assert {"experiment_name", "method_name", "checkpoint", "results"} <= set(scores)  # ns-eval's keys
    assert scores["inference"]["inference_sampler"] == "activation"
    assert (scores["inference"]["probe_layer"], scores["inference"]["probe_fct"]) == (2, "std_half_sq")
    assert len(scores["render_seconds_per_image"]) == 4
    results = scores["results"]
    assert "coarse_psnr" not in results and {"psnr", "fine_psnr", "fine_ssim"} <= set(results)
    model = pipeline.model
    loader = pipeline.datamanager.fixed_indices_eval_dataloader
    psnrs = [
        image_metrics(model.render_with_activations(bundle, 2, "std_half_sq")[0]["rgb"], target, None)["psnr"]
        for _, bundle, target in eval_views(model, loader)
    ]
    assert results["psnr"] == pytest.approx(sum(psnrs) / len(psnrs), abs=1e-3)


def test_viewer_serves_the_model_in_the_setting(pipeline, monkeypatch):
    from nerfstudio.scripts.viewer import run_viewer

    served = {}
    monkeypatch.setattr(
        run_viewer, "_start_viewer", lambda config, pipeline, step: served.update(pipeline=pipeline)
    )
    monkeypatch.chdir(REPO)
    render.Viewer(load_config=RUN, layer=0, fct=2, upsample=True, device="cpu").main()
    model = served["pipeline"].model
    assert model.config.inference_sampler == "activation"
    assert (model.config.probe_layer, model.config.probe_fct, model.config.probe_upsample) == (
        0,
        "std_half_sq",
        True,
    )
    camera = pipeline.datamanager.eval_dataset.cameras[0:1]
    outputs = model.get_outputs_for_camera(camera)  # what the viewer's render thread calls
    expected, _ = model.render_with_activations(camera_rays(camera), 0, "std_half_sq", upsample=True)
    assert torch.equal(outputs["rgb"], expected["rgb"]) and "rgb_coarse" not in outputs


def test_auto_chooses_within_the_budget_and_is_reused(home, tmp_path, monkeypatch):
    """eval.py --auto on a copy of the shipped run: the choice meets the budget on the val images, is
    recorded in the run folder, and a later eval.py / ns-internals-render --auto uses it."""
    from nerfinternals import auto
    from nerfinternals.auto import AUTO_FILE, auto_settings, label, render_kwargs
    from nerfinternals.demo import DEMO_SCENE, ensure_scene
    from nerfinternals.eval import ActivationDerivedDensity, evaluate

    every = auto.candidates
    monkeypatch.setattr(
        auto, "candidates", lambda model: every(model)[::7]
    )  # 7 of the 45: seconds, not minutes

    copy = tmp_path / "clone"
    shutil.copytree(
        REPO / RUN.parent, copy / RUN.parent, ignore=shutil.ignore_patterns("eval*", "visualize*", AUTO_FILE)
    )
    monkeypatch.chdir(copy)
    monkeypatch.setenv("TORCH_HOME", str(home))
    ensure_scene(Path(DEMO_SCENE))
    budget = 0.5
    summary = evaluate(
        ActivationDerivedDensity(load_config=RUN, auto=True, max_psnr_drop=budget, max_images=1, device="cpu")
    )
    record = json.loads((RUN.parent / AUTO_FILE).read_text())
    chosen = record["chosen"]
    assert record["max_psnr_drop"] == budget and record["val_images"] == 1 and record["reason"]
    assert len(record["candidates"]) == 7
    # independently: the choice's PSNR on the val image is within the budget of stock's
    _, val, _, _ = load_pipeline(RUN, device="cpu", test_mode="val")
    ((_, bundle, target),) = list(eval_views(val.model, val.datamanager.fixed_indices_eval_dataloader, 1))
    stock = image_metrics(val.model.render_stock(bundle)["rgb_fine"], target, None)["psnr"]
    if chosen["inference_sampler"] == "activation":
        ours = val.model.render_with_activations(bundle, **render_kwargs(chosen))[0]["rgb"]
        assert image_metrics(ours, target, None)["psnr"] >= stock - budget - 1e-4
        assert [r for r in record["candidates"] if r["settings"] == chosen][0]["within_budget"]
        (experiment,) = summary["experiments"].values()  # eval.py evaluated the choice on the test images
        assert experiment["render"] == render_kwargs(chosen)
    else:
        assert all(not r["within_budget"] for r in record["candidates"]) and not summary["experiments"]
    # the fastest of those within the budget
    within = [r for r in record["candidates"] if r["within_budget"]]
    if within:
        assert chosen == min(within, key=lambda r: r["t"])["settings"]
    # reused, not measured again
    monkeypatch.setattr(
        "nerfinternals.auto.choose", lambda *a, **k: pytest.fail("the recorded choice is not reused")
    )
    assert auto_settings(RUN, budget, device="cpu") == chosen
    run = render._SettingRun(
        render.Interpolate(load_config=RUN, auto=True, max_psnr_drop=budget, device="cpu")
    )
    settings = run.settings()
    assert {k: settings[k] for k in chosen} == chosen and label(chosen) in label(settings)
    with pytest.raises(InputError, match="--max-psnr-drop must be at least 0"):
        auto_settings(RUN, -1.0)


def test_auto_candidates_cover_layers_transforms_and_sampling_options(models):
    from nerfinternals.auto import candidates, label

    nerf = candidates(models("nerf"))  # 4 probe-able layers: 0..2 are tried
    assert len(nerf) == 3 * 3 * 5 and len({label(c) for c in nerf}) == len(nerf)
    assert {c["probe_layer"] for c in nerf} == {0, 1, 2}
    assert {label(c) for c in nerf if c["probe_layer"] == 1 and c["probe_fct"] == "std"} == {
        "l1 std",
        "l1 std n4",
        "l1 std ups",
        "l1 std box",
        "l1 std n4 box",
    }
    # no scene box (scene contraction): no in-box candidates
    assert not any(c["probe_in_box"] for c in candidates(models("nerfacto")))
