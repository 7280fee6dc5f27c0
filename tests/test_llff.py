"""LLFF data: the generator's LLFF format, the llff-data dataparser, NDC, tiny ns-train runs, bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfinternals.data import llff as llff_module
from nerfinternals.data.llff import (
    LLFFDataError,
    LLFFDataParserConfig,
    average_pose,
    llff_to_opengl,
    load_poses_bounds,
)
from nerfinternals.data.ndc import NDCCollider, ndc_rays, ndc_to_world, world_to_ndc
from nerfinternals.data.synthetic import generate_llff_scene, llff_poses, ray_directions
from tests.runs import EVAL_SCRIPT, NS_TRAIN, TINY_FLAGS

W, H, GRID, ANGLE = 32, 24, (4, 4), 0.69
N = GRID[0] * GRID[1]
FOCAL = 0.5 * W / math.tan(0.5 * ANGLE)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return generate_llff_scene(
        tmp_path_factory.mktemp("llff") / "scene", "blocks", width=W, height=H, grid=GRID, seed=3
    )


def parse(data: Path, split: str = "train", **kwargs):
    return LLFFDataParserConfig(data=data, **kwargs).setup().get_dataparser_outputs(split)


def copy_scene(scene: Path, tmp_path: Path, drop: tuple[str, ...] = ()) -> Path:
    out = tmp_path / "scene"
    shutil.copytree(scene, out, ignore=shutil.ignore_patterns(*drop))
    return out


# ---- generator ------------------------------------------------------------------------------------
def test_generator_writes_the_llff_layout(scene):
    array = np.load(scene / "poses_bounds.npy")
    assert array.shape == (N, 17)
    llff, bounds = array[:, :15].reshape(-1, 3, 5), array[:, 15:]
    np.testing.assert_allclose(llff[:, :, 4], np.tile([H, W, FOCAL], (N, 1)))
    # the LLFF [down, right, back] columns are the generator's OpenGL poses
    poses = llff_poses(*GRID, seed=3)
    np.testing.assert_allclose(llff_to_opengl(llff), np.stack(poses)[:, :3], atol=1e-12)
    for i, c2w in enumerate(poses):
        stem = f"image_{i:03d}"
        with Image.open(scene / "images" / f"{stem}.png") as image:
            assert image.mode == "RGB" and image.size == (W, H)
            full = image.copy()
        depth = np.load(scene / "depth" / f"{stem}.npy")
        assert depth.shape == (H, W) and np.isfinite(depth).all()  # the backdrop fills every view
        # bounds = min / max z-depth of the view
        _, dirs = ray_directions(c2w, W, H, ANGLE)
        z_depth = depth * (dirs @ -c2w[:3, 2])
        np.testing.assert_allclose(bounds[i], [z_depth.min(), z_depth.max()], rtol=1e-6)
        for f in (2, 4):
            with Image.open(scene / f"images_{f}" / f"{stem}.png") as small:
                assert small.size == (W // f, H // f)
                blocks = np.asarray(full, dtype=np.float64).reshape(H // f, f, W // f, f, 3).mean(axis=(1, 3))
                assert np.abs(np.asarray(small, dtype=np.float64) - blocks).max() <= 1.0  # box filter
            assert np.load(scene / f"depth_{f}" / f"{stem}.npy").shape == (H // f, W // f)
    # the camera grid faces the scene: every optical axis points towards -y, the centres differ
    centres = np.stack(poses)[:, :3, 3]
    assert (np.stack(poses)[:, 1, 2] > 0.95).all() and np.ptp(centres[:, 0]) > 0.5


def test_generator_is_deterministic_and_checks_factors(tmp_path, scene):
    again = generate_llff_scene(tmp_path / "again", "blocks", width=W, height=H, grid=GRID, seed=3)
    assert (again / "poses_bounds.npy").read_bytes() == (scene / "poses_bounds.npy").read_bytes()
    assert (again / "images_4" / "image_005.png").read_bytes() == (
        scene / "images_4" / "image_005.png"
    ).read_bytes()
    with pytest.raises(ValueError, match=r"downscale factor 5 does not divide the image size 32x24"):
        generate_llff_scene(tmp_path / "bad", width=W, height=H, downscale_factors=(2, 5))
    with pytest.raises(ValueError, match="grid columns must be a positive integer"):
        generate_llff_scene(tmp_path / "bad", grid=(0, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]


def test_generator_cli_llff(tmp_path):
    cli = [sys.executable, "-m", "nerfinternals.data.synthetic", "--format", "llff"]
    good = subprocess.run(
        [*cli, "--output-dir", str(tmp_path / "s"), "--grid", "2", "3", "--width", "8", "--height", "8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert good.returncode == 0, good.stderr
    assert "wrote 6 frames" in good.stdout and np.load(tmp_path / "s" / "poses_bounds.npy").shape == (6, 17)
    bad = subprocess.run(
        [*cli, "--output-dir", str(tmp_path / "b"), "--width", "30", "--downscale-factors", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("error: downscale factor 4 does not divide the image size 30x32")
    assert not (tmp_path / "b").exists()


# ---- the dataparser -------------------------------------------------------------------------------
def test_parser_counts_intrinsics_and_bounds(scene):
    train, test = parse(scene, "train", downscale_factor=4), parse(scene, "test", downscale_factor=4)
    # LLFF hold-out: images 0 and 8 of 16
    assert [p.name for p in test.image_filenames] == ["image_000.png", "image_008.png"]
    assert len(train.image_filenames) == 14 and "image_001.png" == train.image_filenames[0].name
    assert all(p.parent.name == "images_4" for p in train.image_filenames)
    cams = train.cameras
    assert len(cams) == 14 and (cams.width == W // 4).all() and (cams.height == H // 4).all()
    np.testing.assert_allclose(cams.fx.numpy(), FOCAL / 4, rtol=1e-6)
    assert torch.equal(cams.fx, cams.fy) and (cams.cx == W / 8).all() and (cams.cy == H / 8).all()
    # bd_factor 0.75: the smallest bound becomes 1 / 0.75; near = 0.9 x that, far = the largest bound
    bounds = np.load(scene / "poses_bounds.npy")[:, 15:]
    scale = train.dataparser_scale
    assert scale == pytest.approx(1.0 / (bounds.min() * 0.75))
    assert train.metadata["near_plane"] == pytest.approx(0.9 / 0.75)
    assert train.metadata["far_plane"] == pytest.approx(bounds.max() * scale)
    assert train.metadata["ndc_focal"] == pytest.approx(FOCAL / 4)
    assert (train.metadata["ndc_width"], train.metadata["ndc_height"]) == (W // 4, H // 4)
    # other splits
    assert len(parse(scene, "train", eval_mode="fraction").image_filenames) == 15  # ceil(0.9 x 16)
    assert [p.name for p in parse(scene, "test", eval_mode="fraction").image_filenames] == ["image_014.png"]
    assert len(parse(scene, "test", eval_mode="all").image_filenames) == N
    assert len(parse(scene, "test", eval_interval=4).image_filenames) == 4


def test_parser_recentres_and_matches_the_generator_geometry(scene):
    out = parse(scene, "train", downscale_factor=2, eval_mode="all")
    c2w = out.cameras.camera_to_worlds.double().numpy()
    np.testing.assert_allclose(average_pose(c2w), np.eye(4)[:3], atol=1e-6)  # recentred
    # the scene's hit points (ground-truth depth) along the parser's rays are the generator's hit
    # points mapped by the dataparser transform and scale
    transform, scale = out.dataparser_transform.double().numpy(), out.dataparser_scale
    for i in (0, 6, 15):
        rays = out.cameras.generate_rays(camera_indices=i, keep_shape=True)
        depth = np.load(scene / "depth_2" / f"image_{i:03d}.npy").astype(np.float64)
        ours = rays.origins.double().numpy() + (depth * scale)[..., None] * rays.directions.double().numpy()
        origins, dirs = ray_directions(llff_poses(*GRID, seed=3)[i], W // 2, H // 2, ANGLE)
        world = origins + depth[..., None] * dirs
        np.testing.assert_allclose(ours, scale * (world @ transform[:, :3].T + transform[:, 3]), atol=1e-5)


def test_missing_downscaled_folder_is_made_from_images(scene, tmp_path, monkeypatch):
    data = copy_scene(scene, tmp_path, drop=("images_4",))
    files = parse(data, downscale_factor=4).image_filenames
    assert files[0].parent == data / "images_4"
    for name in ("image_003.png", "image_015.png"):  # same box filter as the generator's images_4
        assert np.array_equal(
            np.asarray(Image.open(data / "images_4" / name)),
            np.asarray(Image.open(scene / "images_4" / name)),
        )
    # a read-only data folder: the images go to the cache
    (data / "images_4").rename(tmp_path / "moved")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real_write = llff_module._write_downscaled

    def read_only(sources, target, factor):
        if target.parent == data:
            raise PermissionError(13, "Permission denied")
        real_write(sources, target, factor)

    monkeypatch.setattr(llff_module, "_write_downscaled", read_only)
    files = parse(data, downscale_factor=4).image_filenames
    assert not (data / "images_4").exists() and (tmp_path / "cache") in files[0].parents
    assert len(files) == 14


# ---- bad input: one clear line --------------------------------------------------------------------
def _expect(data: Path, match: str, **kwargs) -> None:
    with pytest.raises(LLFFDataError, match=match) as info:
        parse(data, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_inputs(scene, tmp_path):
    _expect(tmp_path / "nowhere", "LLFF data folder not found")
    data = copy_scene(scene, tmp_path)
    pb = data / "poses_bounds.npy"
    good = np.load(pb)

    pb.unlink()
    _expect(data, r"poses_bounds\.npy not found in .*scene")
    np.save(pb, good[:, :15])
    _expect(data, r"must be an N x 17 array .*found shape \(16, 15\)")
    np.save(pb, good[:-1])
    _expect(data, r"poses_bounds\.npy has 15 rows but .*images_4 holds 16 images", downscale_factor=4)
    _expect(data, r"poses_bounds\.npy has 15 rows but .*images holds 16 images")
    np.save(pb, good)
    _expect(
        data,
        r"downscale factor 3 does not divide the image size 32x24 .*expected both divisible by 3",
        downscale_factor=3,
    )
    (data / "images_4" / "image_003.png").write_bytes(b"not a png")
    _expect(data, r"cannot read image .*images_4/image_003\.png", downscale_factor=4)
    Image.new("RGB", (9, 6)).save(data / "images_4" / "image_003.png")
    _expect(
        data,
        r"image .*image_003\.png is 9x6, expected 8x6 \(32x24 in poses_bounds\.npy / 4\)",
        downscale_factor=4,
    )
    shutil.rmtree(data / "images_4")
    Image.new("RGB", (W, H + 4)).save(data / "images" / "image_002.png")
    _expect(data, r"image_002\.png is 32x28, expected 32x24", downscale_factor=4)
    assert not (data / "images_4").exists()  # nothing written on bad input
    bad_bounds = good.copy()
    bad_bounds[3, 15] = -1.0
    np.save(pb, bad_bounds)
    _expect(data, "bounds must satisfy 0 < near <= far")
    _expect(
        copy_scene(scene, tmp_path / "b"),
        "the test split .* is empty",
        split="test",
        eval_mode="fraction",
        train_split_fraction=1.0,
    )


def test_load_poses_bounds_reads_other_dtypes(tmp_path):
    np.save(tmp_path / "poses_bounds.npy", np.ones((3, 17), dtype=np.float32))
    poses, bounds = load_poses_bounds(tmp_path / "poses_bounds.npy")
    assert poses.shape == (3, 3, 5) and bounds.shape == (3, 2) and poses.dtype == np.float64


# ---- NDC ------------------------------------------------------------------------------------------
def test_ndc_rays_map_near_to_minus_one_and_infinity_to_plus_one():
    w, h, f = 40.0, 30.0, 35.0
    g = torch.Generator().manual_seed(0)
    origins = torch.randn(64, 3, generator=g, dtype=torch.float64) * 0.2
    directions = torch.nn.functional.normalize(
        torch.randn(64, 3, generator=g, dtype=torch.float64) * 0.3
        + torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64),
        dim=-1,
    )
    o, d = ndc_rays(origins, directions, w, h, f)
    torch.testing.assert_close(o[:, 2], torch.full((64,), -1.0, dtype=torch.float64))  # near plane z = -1
    torch.testing.assert_close((o + d)[:, 2], torch.full((64,), 1.0, dtype=torch.float64))  # infinity
    # the ray's world points land on the NDC ray, in order, and on the reference camera's pixel
    s = torch.tensor([0.0, 0.5, 2.0, 10.0, 1e3], dtype=torch.float64)
    t0 = -(1.0 + origins[:, 2]) / directions[:, 2]
    world = origins[:, None] + (t0[:, None] + s)[..., None] * directions[:, None]
    ndc = world_to_ndc(world, w, h, f)
    rel = ndc - o[:, None]
    along = (rel * d[:, None]).sum(-1) / (d * d).sum(-1)[:, None]
    torch.testing.assert_close(rel, along[..., None] * d[:, None], atol=1e-9, rtol=0)
    assert (along.diff(dim=1) > 0).all() and along[:, 0].abs().max() < 1e-12
    u = w / 2 + f * world[..., 0] / -world[..., 2]
    v = h / 2 - f * world[..., 1] / -world[..., 2]
    torch.testing.assert_close((ndc[..., 0] + 1) * w / 2, u)
    torch.testing.assert_close((1 - ndc[..., 1]) * h / 2, v)
    torch.testing.assert_close(ndc_to_world(ndc, w, h, f), world)


def test_ndc_collider_on_parsed_cameras_keeps_pixels(scene):
    out = parse(scene, "test", downscale_factor=2)
    meta = out.metadata
    collider = NDCCollider(meta["ndc_width"], meta["ndc_height"], meta["ndc_focal"])
    cams = out.cameras
    rays = cams.generate_rays(camera_indices=1, keep_shape=True)
    bundle = collider(rays.flatten())
    torch.testing.assert_close(bundle.directions.norm(dim=-1), torch.ones(len(bundle)))
    assert (bundle.nears == 0).all()
    torch.testing.assert_close(
        (bundle.origins + bundle.fars * bundle.directions)[:, 2], torch.ones(len(bundle))
    )
    torch.testing.assert_close(bundle.origins[:, 2], -torch.ones(len(bundle)))
    # an NDC sample, taken back to the world, projects into its camera at the ray's pixel centre
    t = torch.tensor([0.1, 0.5, 0.9])
    ndc = bundle.origins[:, None] + (t[None, :, None] * bundle.fars[:, None]) * bundle.directions[:, None]
    world = ndc_to_world(ndc.double(), meta["ndc_width"], meta["ndc_height"], meta["ndc_focal"])
    c2w = cams.camera_to_worlds[1].double()
    cam = (world - c2w[:, 3]) @ c2w[:, :3]  # camera frame (OpenGL)
    fx, cx, cy = cams.fx[1].item(), cams.cx[1].item(), cams.cy[1].item()
    u, v = cx + fx * cam[..., 0] / -cam[..., 2], cy - fx * cam[..., 1] / -cam[..., 2]
    j, i = torch.meshgrid(torch.arange(W // 2), torch.arange(H // 2), indexing="xy")
    torch.testing.assert_close(u, (j.reshape(-1, 1) + 0.5).double().expand_as(u), atol=1e-3, rtol=0)
    torch.testing.assert_close(v, (i.reshape(-1, 1) + 0.5).double().expand_as(v), atol=1e-3, rtol=0)


def test_models_pick_the_collider_from_the_data(scene):
    from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
    from nerfstudio.model_components.scene_colliders import NearFarCollider

    from nerfinternals.models import (
        ActivationMipNerfModelConfig,
        ActivationNerfactoModelConfig,
        ActivationNeRFModelConfig,
    )

    out = parse(scene, downscale_factor=4)
    tiny = dict(base_mlp_num_layers=2, base_mlp_layer_width=8, head_mlp_layer_width=8, skip_connections=())
    for cls in (ActivationNeRFModelConfig, ActivationMipNerfModelConfig):
        ndc = cls(use_ndc_collider=True, **tiny).setup(
            scene_box=out.scene_box, num_train_data=2, metadata=out.metadata
        )
        plain = cls(**tiny).setup(scene_box=out.scene_box, num_train_data=2, metadata=out.metadata)
        blender = cls(**tiny).setup(scene_box=out.scene_box, num_train_data=2, metadata={})
        assert isinstance(ndc.collider, NDCCollider) and ndc.collider.focal == pytest.approx(FOCAL / 4)
        assert isinstance(plain.collider, NearFarCollider) and not plain.collider.reset_near_plane
        assert (plain.collider.near_plane, plain.collider.far_plane) == (
            out.metadata["near_plane"],
            out.metadata["far_plane"],
        )
        assert (blender.collider.near_plane, blender.collider.far_plane) == (2.0, 6.0)  # collider_params
        assert sorted(ndc.state_dict()) == sorted(plain.state_dict())
        with pytest.raises(ValueError, match="use_ndc_collider needs .* llff-data"):
            cls(use_ndc_collider=True, **tiny).setup(scene_box=out.scene_box, num_train_data=2, metadata={})
        # NDC rays flow through the activation-informed renderer
        ndc.eval()
        bundle = out.cameras.generate_rays(camera_indices=0, keep_shape=True)
        images, _ = ndc.render_with_activations(bundle, layer=0, fct="std_half")
        assert images["rgb"].shape == (H // 4, W // 4, 3) and torch.isfinite(images["rgb"]).all()

    nerfacto = dict(
        hidden_dim=8, hidden_dim_color=8, num_levels=2, log2_hashmap_size=8, proposal_mlp_layer_width=8
    )
    off = CameraOptimizerConfig(mode="off")
    model = ActivationNerfactoModelConfig(use_ndc_collider=True, camera_optimizer=off, **nerfacto).setup(
        scene_box=out.scene_box, num_train_data=2, metadata=out.metadata
    )
    assert isinstance(model.collider, NDCCollider)
    assert model.field.aabb.tolist() == [[-1.0] * 3, [1.0] * 3]
    with pytest.raises(ValueError, match="camera-optimizer.mode off"):
        ActivationNerfactoModelConfig(
            use_ndc_collider=True, camera_optimizer=CameraOptimizerConfig(mode="SO3xR3"), **nerfacto
        ).setup(scene_box=out.scene_box, num_train_data=2, metadata=out.metadata)


# ---- through ns-train -----------------------------------------------------------------------------
def _ns_train(data: Path, output: Path, torch_home: Path, *extra: str, dataparser: tuple[str, ...] = ()):
    cmd = [
        NS_TRAIN, "activation-nerf",
        "--machine.device-type", "cpu",
        "--vis", "tensorboard",
        "--output-dir", str(output),
        "--experiment-name", "llff",
        "--timestamp", "run",
        "--max-num-iterations", "3",
        "--steps-per-save", "3",
        "--pipeline.datamanager.train-num-rays-per-batch", "64",
        "--pipeline.datamanager.eval-num-rays-per-batch", "64",
        "--pipeline.model.eval-num-rays-per-chunk", "256",
        *TINY_FLAGS["activation-nerf"],
        *extra,
        "llff-data", "--data", str(data), "--downscale-factor", "2", *dataparser,
    ]  # fmt: skip
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=output
    )


def test_uncaught_data_error_is_one_line(scene, tmp_path):
    """What ns-train shows for bad data: the parser's error, uncaught in a program, is one `error:` line
    (checked here without ns-train's start-up; ns-train reaches the parser the same way)."""
    broken = copy_scene(scene, tmp_path)
    (broken / "poses_bounds.npy").unlink()
    code = (
        "from nerfinternals.data.llff import LLFFDataParserConfig; import sys; "
        "LLFFDataParserConfig(data=sys.argv[1]).setup().get_dataparser_outputs('train')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(broken)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: poses_bounds.npy not found in {broken} (expected the LLFF layout)"]


# ---- selection and report views ----------------------------------------------------------------------------
def _datamanager(scene: Path, **parser):
    """What nerfinternals.views.split_views reads of a datamanager, with the llff-data parser."""
    from types import SimpleNamespace

    from nerfstudio.data.datasets.base_dataset import InputDataset

    return SimpleNamespace(
        dataparser=LLFFDataParserConfig(data=scene, **parser).setup(),
        dataset_type=InputDataset,
        config=SimpleNamespace(camera_res_scale_factor=1.0),
    )


def test_views_of_llff_alternate_by_name(scene):
    """LLFF's val and test splits are the same images: sorted by name, even positions select, odd report;
    --max-images N keeps N of each; one eval image is too few to choose on other views."""
    from nerfinternals.loading import InputError
    from nerfinternals.views import ALTERNATE, split_views

    files = sorted(p.name for p in (scene / "images").iterdir())
    held_out = [f"images/{files[i]}" for i in (0, 4, 8, 12)]  # every 4th image is an eval image
    split = split_views(_datamanager(scene, eval_interval=4))
    assert split.rule == ALTERNATE
    assert split.selection.names == [held_out[0], held_out[2]]
    assert split.report.names == [held_out[1], held_out[3]]
    assert split.record() == {
        "selection_views": split.selection.names,
        "report_views": split.report.names,
        "view_rule": ALTERNATE,
    }
    few = split_views(_datamanager(scene, eval_interval=4), max_images=1)
    assert (few.selection.names, few.report.names) == ([held_out[0]], [held_out[1]])
    # the images a side yields are the named ones (the dataset's image files)
    dataset = split.report.dataset
    assert [dataset._dataparser_outputs.image_filenames[i].name for i in split.report.indices] == [
        files[4],
        files[12],
    ]
    with pytest.raises(
        InputError, match="1 eval image.*too few to choose on other images than those reported"
    ):
        split_views(_datamanager(scene, eval_interval=16))


def test_ns_train_llff_with_and_without_ndc_then_eval(scene, tmp_path, monkeypatch):
    """Two tiny ns-train runs at once (start-up dominates), with and without NDC; eval.py on the NDC run."""
    home = tmp_path / "torch_home"
    home.mkdir()
    runs = {}
    for name, extra in (("ndc", ["--pipeline.model.use-ndc-collider", "True"]), ("plain", [])):
        (tmp_path / name).mkdir()
        runs[name] = _ns_train(scene, tmp_path / name, home, *extra)
    results = {name: (p, *p.communicate(timeout=600)) for name, p in runs.items()}

    for name in ("ndc", "plain"):
        process, stdout, stderr = results[name]
        assert process.returncode == 0, f"{name}:\n{stdout[-2000:]}\n{stderr[-3000:]}"
        run = tmp_path / name / "llff" / "activation-nerf" / "run"
        assert list((run / "nerfstudio_models").glob("step-*.ckpt"))
        config = (run / "config.yml").read_text()
        assert ("use_ndc_collider: true" in config) == (name == "ndc")
        assert "LLFFDataParserConfig" in config
        transform = json.loads((run / "dataparser_transforms.json").read_text())
        assert np.array(transform["transform"]).shape == (3, 4) and transform["scale"] > 0
    assert not any(home.rglob("*")), "nothing may be downloaded"

    # eval.py renders the NDC run with activation-informed sampling
    config = tmp_path / "ndc" / "llff" / "activation-nerf" / "run" / "config.yml"
    env = {**os.environ, "TORCH_HOME": str(home)}
    result = subprocess.run(
        [
            sys.executable,
            EVAL_SCRIPT,
            "--load-config",
            str(config),
            "--layer",
            "0",
            "--fct",
            "1",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((config.parent / "eval" / "summary.json").read_text())
    assert summary["num_images"] == 2  # images 0 and 8 held out
    exp = summary["experiments"]["layer_00_ups_0_fct_std_half"]
    assert math.isfinite(exp["psnr"]) and exp["macs_ratio"] < 1
    with Image.open(config.parent / "eval" / "000" / "layer_00_ups_0_fct_std_half" / "ours.png") as img:
        assert img.size == (W // 2, H // 2)

    # eval.py --auto (over one candidate per sampler): chosen on image 0, evaluated on image 8 only
    from nerfinternals import auto
    from nerfinternals.eval import ActivationDerivedDensity, evaluate

    every = auto.candidates
    monkeypatch.setattr(
        auto,
        "candidates",
        lambda model, r=64: list({c["inference_sampler"]: c for c in every(model, r)}.values()),
    )
    monkeypatch.setenv("TORCH_HOME", str(home))
    summary = evaluate(
        ActivationDerivedDensity(load_config=config, auto=True, output_dir="auto", device="cpu")
    )
    files = sorted(p.name for p in (scene / "images").iterdir())
    record = json.loads((config.parent / auto.AUTO_FILE).read_text())
    for views in (record, summary):
        assert [Path(n).name for n in views["selection_views"]] == [files[0]]
        assert [Path(n).name for n in views["report_views"]] == [files[8]]
    assert summary["num_images"] == 1 and record["selection_images"] == 1


def _blender_datamanager(scene: Path):
    """What nerfinternals.views.split_views reads of a datamanager, with nerfstudio's Blender parser."""
    from types import SimpleNamespace

    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
    from nerfstudio.data.datasets.base_dataset import InputDataset

    return SimpleNamespace(
        dataparser=BlenderDataParserConfig(data=scene).setup(),
        dataset_type=InputDataset,
        config=SimpleNamespace(camera_res_scale_factor=1.0),
    )


def test_views_of_a_blender_val_split_that_repeats_test_cameras_alternate(tmp_path):
    """A val split under other file names but with a test split's camera is not a separate split: the
    test images alternate by name, as for LLFF; a val split with cameras of its own selects."""
    from nerfinternals.data.synthetic import generate_blender_scene
    from nerfinternals.views import ALTERNATE, SEPARATE_SPLITS, split_views

    scene = generate_blender_scene(tmp_path / "s", width=8, height=8, num_train=2, num_val=2, num_test=4)
    split = split_views(_blender_datamanager(scene))
    assert split.rule == SEPARATE_SPLITS
    assert (split.selection.names, split.report.names) == (
        ["val/r_0.png", "val/r_1.png"],
        ["test/r_0.png", "test/r_1.png", "test/r_2.png", "test/r_3.png"],
    )

    test = json.loads((scene / "transforms_test.json").read_text())
    val = json.loads((scene / "transforms_val.json").read_text())
    val["frames"][1]["transform_matrix"] = test["frames"][2]["transform_matrix"]  # one camera repeated
    (scene / "transforms_val.json").write_text(json.dumps(val))
    split = split_views(_blender_datamanager(scene))
    assert split.rule == ALTERNATE
    assert (split.selection.names, split.report.names) == (
        ["test/r_0.png", "test/r_2.png"],
        ["test/r_1.png", "test/r_3.png"],
    )


def test_views_on_training_cameras_select_evenly_spaced_and_every_eval_image_reports(tmp_path):
    """selection="train": N training cameras, first to last evenly spaced by name (numbers by value), select;
    every test image reports (--max-images N keeps N); no image is on both sides."""
    from nerfinternals.data.synthetic import generate_blender_scene
    from nerfinternals.loading import InputError
    from nerfinternals.views import TRAIN, split_views

    scene = generate_blender_scene(tmp_path / "s", width=8, height=8, num_train=11, num_val=2, num_test=3)
    split = split_views(_blender_datamanager(scene), selection="train", train_views=3)
    assert split.rule == TRAIN.format(n=3)
    # 11 training images r_0..r_10: positions 0, 5 and 10 of the name order
    assert split.selection.names == ["train/r_0.png", "train/r_5.png", "train/r_10.png"]
    assert split.report.names == ["test/r_0.png", "test/r_1.png", "test/r_2.png"]
    dataset = split.selection.dataset
    assert [dataset._dataparser_outputs.image_filenames[i].name for i in split.selection.indices] == [
        "r_0.png",
        "r_5.png",
        "r_10.png",
    ]
    every = split_views(_blender_datamanager(scene), max_images=2, selection="train", train_views=20)
    assert len(every.selection.names) == 11 and every.report.names == ["test/r_0.png", "test/r_1.png"]
    with pytest.raises(InputError, match="at least 1 of them, got 0"):
        split_views(_blender_datamanager(scene), selection="train", train_views=0)


def test_worst_view_delta_is_the_lowest_per_view_difference():
    from nerfinternals.views import evenly_spaced, worst_view_delta

    # mean difference +0.1 dB, but the second view loses 0.3 dB: the rule holds the budget against -0.3
    assert worst_view_delta([30.5, 29.7, 31.1], [30.0, 30.0, 31.0]) == pytest.approx(-0.3)
    with pytest.raises(ValueError):
        worst_view_delta([30.0], [30.0, 29.0])
    assert evenly_spaced(5, 2) == [0, 4] and evenly_spaced(3, 8) == [0, 1, 2] and evenly_spaced(7, 1) == [0]
    assert evenly_spaced(100, 4) == [0, 33, 66, 99]


LEGO400 = Path(__file__).resolve().parents[2] / "shared" / "lego400"


@pytest.mark.skipif(not (LEGO400 / "transforms_val.json").is_file(), reason="no shared lego400")
def test_views_of_the_shared_lego_never_select_on_a_reported_camera():
    """../shared/lego400's val split is its test split under other names (same images, same cameras): the
    selection and report views alternate over the test images, and no reported camera is selected on."""
    from nerfinternals.views import ALTERNATE, split_views

    split = split_views(_blender_datamanager(LEGO400))
    assert split.rule == ALTERNATE
    assert split.selection.names == [f"test/r_{i}.png" for i in (0, 20, 40, 60, 80)]
    assert split.report.names == [f"test/r_{i}.png" for i in (10, 30, 50, 70, 90)]
    frames = json.loads((LEGO400 / "transforms_test.json").read_text())["frames"]
    matrix = {Path(f["file_path"]).name + ".png": f["transform_matrix"] for f in frames}
    reported = [matrix[Path(n).name] for n in split.report.names]
    assert all(matrix[Path(n).name] not in reported for n in split.selection.names)
    few = split_views(_blender_datamanager(LEGO400), max_images=2)
    assert (few.selection.names, few.report.names) == (
        ["test/r_0.png", "test/r_20.png"],
        ["test/r_10.png", "test/r_30.png"],
    )
