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


@pytest.mark.parametrize("skip", [False, True])
def test_interpolate_with_the_grid_sampler_and_a_fine_budget(pipeline, home, tmp_path, skip):
    out = tmp_path / "frames"
    args = ["interpolate", "--load-config", str(RUN), "--output-path", str(out), "--output-format", "images"]
    args += ["--image-format", "png", "--interpolation-steps", str(STEPS), "--inference-sampler", "grid"]
    args += ["--fine-samples", "32", "--skip-empty", str(skip)]
    result = ns("ns-internals-render", args, home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "density grid sampler (64^3)" in result.stdout and "32 fine samples" in result.stdout
    assert "density grid 64^3 filled in" in result.stdout
    written = frames(out)
    path = _path(pipeline)
    assert len(written) == len(path)
    model = pipeline.model
    for i, frame in enumerate(written):
        expected, _ = model.render_sampled(
            camera_rays(path[i : i + 1]), "grid", fine_samples=32, skip_empty=skip
        )
        expected = mediapy.to_uint8(expected["rgb"].clamp(0, 1).numpy())
        assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 1, i
    if skip:  # skipped rays are the background: white corners on the spheres scene
        assert (written[0][0, 0] == 255).all()


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
    assert "activation sampler: layer 1, std_half, bf16, fast kernels" in out
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
        (["interpolate", "--kernels", "slow"], "error: invalid choice 'slow' for argument '--kernels'"),
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
    render.Viewer(load_config=RUN, layer=0, fct=2, upsample=True, kernels="stock", device="cpu").main()
    model = served["pipeline"].model
    assert model.config.inference_sampler == "activation" and model.config.kernels == "stock"
    assert (model.config.probe_layer, model.config.probe_fct, model.config.probe_upsample) == (
        0,
        "std_half_sq",
        True,
    )
    camera = pipeline.datamanager.eval_dataset.cameras[0:1]
    outputs = model.get_outputs_for_camera(camera)  # what the viewer's render thread calls
    expected, _ = model.render_with_activations(camera_rays(camera), 0, "std_half_sq", upsample=True)
    assert torch.equal(outputs["rgb"], expected["rgb"]) and "rgb_coarse" not in outputs


def _clone_run(tmp_path: Path) -> Path:
    """A copy of the shipped run (without earlier eval outputs or --auto record) under tmp_path; returns the
    folder to run from (the run's paths are relative to it)."""
    from nerfinternals.auto import AUTO_FILE
    from nerfinternals.demo import DEMO_SCENE, ensure_scene

    copy = tmp_path / "clone"
    shutil.copytree(
        REPO / RUN.parent, copy / RUN.parent, ignore=shutil.ignore_patterns("eval*", "visualize*", AUTO_FILE)
    )
    old = os.getcwd()
    os.chdir(copy)
    try:
        ensure_scene(Path(DEMO_SCENE))
    finally:
        os.chdir(old)
    return copy


def _few_candidates(monkeypatch) -> None:
    """--auto over one candidate of each sampler (seconds, not minutes)."""
    from nerfinternals import auto

    every = auto.candidates

    def few(model, grid_resolution=64):
        options = every(model, grid_resolution)
        picked = {}
        for c in options:  # the first of each sampler, and the first with each budget and skipping
            picked.setdefault((c["inference_sampler"], c["fine_samples"] > 0, c["skip_empty"]), c)
        return list(picked.values())

    monkeypatch.setattr(auto, "candidates", few)


def test_auto_chooses_within_the_budget_and_is_reused(home, tmp_path, monkeypatch):
    """eval.py --auto on a copy of the shipped run: the choice meets the budget on the val images (the
    selection views), is evaluated on the test images (the report views), is recorded in the run folder,
    and a later eval.py / ns-internals-render --auto uses it."""
    from nerfinternals.auto import AUTO_FILE, CHOICE_FIELDS, auto_settings
    from nerfinternals.eval import ActivationDerivedDensity, evaluate

    _few_candidates(monkeypatch)
    monkeypatch.chdir(_clone_run(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(home))
    budget = 0.5
    summary = evaluate(
        ActivationDerivedDensity(load_config=RUN, auto=True, max_psnr_drop=budget, max_images=1, device="cpu")
    )
    record = json.loads((RUN.parent / AUTO_FILE).read_text())
    chosen = record["chosen"]
    assert set(chosen) == set(CHOICE_FIELDS)
    assert record["max_psnr_drop"] == budget and record["selection_images"] == 1 and record["reason"]
    # chosen on the val split, evaluated on the test split: both named, no image in both
    assert record["selection_views"] == ["val/r_0.png"] and record["report_views"] == ["test/r_0.png"]
    assert summary["selection_views"] == ["val/r_0.png"] and summary["report_views"] == ["test/r_0.png"]
    assert {c["settings"]["inference_sampler"] for c in record["candidates"]} == {
        "activation",
        "hybrid",
        "grid",
        "stock",
    }
    # independently: the choice's PSNR on the val image against nerfstudio's own stock render of it
    _, val, _, _ = load_pipeline(RUN, device="cpu", test_mode="val")
    ((_, bundle, target),) = list(eval_views(val.model, val.datamanager.fixed_indices_eval_dataloader, 1))
    stock = image_metrics(val.model.render_stock(bundle)["rgb_fine"], target, None)["psnr"]
    if chosen["inference_sampler"] != "stock" or chosen["fine_samples"] or chosen["skip_empty"]:
        val.model.set_inference(**chosen)
        ours = val.model.get_outputs_for_camera_ray_bundle(bundle)["rgb"]
        assert image_metrics(ours, target, None)["psnr"] >= stock - budget - 1e-4
        (experiment,) = summary["experiments"].values()  # eval.py evaluated the choice on the test images
        assert experiment["render"]["sampler"] == chosen["inference_sampler"]
        assert experiment["render"]["fine_samples"] == chosen["fine_samples"]
    else:
        assert all(not r["within_budget"] for r in record["candidates"]) and not summary["experiments"]
    # reused, not measured again
    monkeypatch.setattr(
        "nerfinternals.auto.choose", lambda *a, **k: pytest.fail("the recorded choice is not reused")
    )
    assert auto_settings(RUN, budget, device="cpu") == chosen
    run = render._SettingRun(
        render.Interpolate(load_config=RUN, auto=True, max_psnr_drop=budget, device="cpu")
    )
    settings = run.settings()
    assert {k: settings[k] for k in chosen} == chosen
    with pytest.raises(InputError, match="--max-psnr-drop must be at least 0"):
        auto_settings(RUN, -1.0)


def test_auto_record_is_reused_only_under_the_same_conditions(home, tmp_path, monkeypatch):
    """Each condition of a recorded choice, changed alone, makes --auto choose again: device (and machine,
    allocator), rescale, precision, budget, near plane, kernels, the views' rule, the config's and checkpoint's contents."""
    from nerfinternals import auto

    _few_candidates(monkeypatch)
    monkeypatch.chdir(_clone_run(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(home))
    asked = dict(device="cpu", precision="fp32", rescale=0.5, keep_near_plane=False, max_images=1)
    auto.auto_settings(RUN, 0.3, **asked)  # chooses and records
    record_path = RUN.parent / auto.AUTO_FILE
    recorded = record_path.read_text()
    calls = []
    monkeypatch.setattr(
        auto, "choose", lambda *a, **k: calls.append(k) or {"chosen": {"inference_sampler": "x"}}
    )

    def chooses_again(budget=0.3, **changes) -> bool:
        calls.clear()
        auto.auto_settings(RUN, budget, **{**asked, **changes})
        return bool(calls)

    assert not chooses_again()  # same conditions: reused
    assert chooses_again(rescale=1.0)
    assert chooses_again(precision="bf16")
    assert chooses_again(budget=0.2)
    assert chooses_again(keep_near_plane=True)
    assert chooses_again(kernels="stock")
    # another device or machine: the record says where it was measured
    data = json.loads(recorded)
    other_allocator = {"steady": "default", "default": "steady"}[data["conditions"]["allocator"]]
    changed = (("device", "cuda"), ("machine", "NVIDIA H200"), ("allocator", other_allocator))
    # a choice made under another rule of the selection views (an earlier version's)
    changed += (("views_rule", "val split selects, test split reports"),)
    for key, value in changed:
        record_path.write_text(json.dumps({**data, "conditions": {**data["conditions"], key: value}}))
        assert chooses_again()
    record_path.write_text(recorded)
    assert not chooses_again()
    # the config's content (same checkpoint name, other settings)
    config = RUN.read_text()
    RUN.write_text(config + "\n# edited\n")
    assert chooses_again()
    RUN.write_text(config)
    assert not chooses_again()
    # the checkpoint's content (same file name and step, other weights)
    (ckpt,) = (RUN.parent / "nerfstudio_models").glob("step-*.ckpt")
    data = bytearray(ckpt.read_bytes())
    data[-1] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    assert chooses_again()
    # an old record without conditions (an earlier version of the file)
    ckpt.write_bytes(bytes(data[:-1] + bytes([data[-1] ^ 0xFF])))
    old = json.loads(recorded)
    del old["conditions"]
    record_path.write_text(json.dumps(old))
    assert chooses_again()


def test_auto_candidates_cover_samplers_budgets_and_options(models):
    from nerfinternals.auto import CHOICE_FIELDS, candidates, fine_budgets, label

    nerf = candidates(models("nerf"))  # 4 probe-able layers: 0..2 are tried; 8 + 8 samples
    assert all(set(c) == set(CHOICE_FIELDS) for c in nerf)
    assert len({label(c) for c in nerf}) == len(nerf)  # no candidate twice
    assert fine_budgets(models("nerf")) == [0, 8, 6, 4, 2]  # stock (8 + 8), 8 importance only, 3/4, 1/2, 1/4
    assert fine_budgets(models("nerfacto")) == [0, 6, 4, 2]  # 8 field samples
    ours_at_stock = [c for c in nerf if c["inference_sampler"] == "activation" and not c["fine_samples"]]
    assert {c["probe_layer"] for c in ours_at_stock} == {0, 1, 2}
    assert {label(c) for c in ours_at_stock if c["probe_layer"] == 1 and c["probe_fct"] == "std"} == {
        "l1 std",
        "l1 std n4",
        "l1 std ups",
        "l1 std box",
        "l1 std n4 box",
    }
    by_sampler = {
        s: [c for c in nerf if c["inference_sampler"] == s] for s in ("activation", "hybrid", "grid", "stock")
    }
    assert {c["fine_samples"] for c in by_sampler["activation"]} == {0, 8, 6, 4, 2}
    assert all(c["skip_empty"] for c in by_sampler["hybrid"]) and len(by_sampler["hybrid"]) == 5 * 9
    assert {
        (c["fine_samples"], c["skip_empty"], c["probe_in_box"], c["initial_samples"])
        for c in by_sampler["grid"]
    } == {(k, skip, box, 0) for k in (0, 8, 6, 4, 2) for skip in (False, True) for box in (False, True)} | {
        (k, skip, False, 2)
        for k in (0, 8, 6, 4, 2)
        for skip in (False, True)  # N/4 of the 8 coarse samples
    }
    assert {c["grid_resolution"] for c in nerf} == {64}  # the run's
    # stock at its own budget without skipping is the reference, not a candidate
    assert not [c for c in by_sampler["stock"] if not c["fine_samples"] and not c["skip_empty"]]
    assert len(by_sampler["stock"]) == 2 * 5 - 1
    # no scene box (scene contraction): no in-box candidates
    nerfacto = candidates(models("nerfacto"))
    assert not any(c["probe_in_box"] for c in nerfacto)
    # grid-all only where it differs from grid (nerfacto's later proposal stages), at every budget
    assert not [c for c in nerf if c["inference_sampler"] == "grid-all"]
    grid_all = [c for c in nerfacto if c["inference_sampler"] == "grid-all"]
    assert {
        (c["fine_samples"], c["skip_empty"], c["initial_samples"], c["grid_resolution"]) for c in grid_all
    } == {
        (k, skip, n, r) for k in (0, 6, 4, 2) for skip in (False, True) for n in (0, 4) for r in (64, 128)
    }  # N/4 of the 16 initial samples; the run's resolution and twice it
    assert "grid-all 128^3 n4 k4 skip" in {label(c) for c in grid_all}
    assert {c["grid_resolution"] for c in candidates(models("nerfacto"), 32)} == {32, 64}
