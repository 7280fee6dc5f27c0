"""The synthetic Blender-format scene generator: layout, intrinsics, depth, determinism, errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nerfinternals.data import synthetic
from nerfinternals.data.synthetic import (
    SCENES,
    Box,
    Plane,
    Sphere,
    camera_poses,
    generate_blender_scene,
    ray_directions,
    render_view,
)

SMALL = dict(width=40, height=24, num_train=3, num_val=2, num_test=1)
COUNTS = {"train": 3, "val": 2, "test": 1}


def files(folder):
    """{relative path: bytes} of every file under `folder`."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def surface_distance(primitive, p):
    """Unsigned distance (N,) from points (N, 3) to the primitive's surface."""
    if isinstance(primitive, Sphere):
        return np.abs(np.linalg.norm(p - np.asarray(primitive.center), axis=1) - primitive.radius)
    if isinstance(primitive, Box):
        return np.abs(box_sdf(primitive, p))
    if isinstance(primitive, Plane):
        outside = np.clip(np.abs(p[:, :2]) - primitive.half_size, 0.0, None)
        return np.sqrt((p[:, 2] - primitive.z) ** 2 + (outside**2).sum(axis=1))
    raise TypeError(primitive)


def box_sdf(box, p):
    center, half = (
        (np.asarray(box.hi) + np.asarray(box.lo)) / 2,
        (np.asarray(box.hi) - np.asarray(box.lo)) / 2,
    )
    q = np.abs(p - center) - half
    return np.linalg.norm(np.clip(q, 0.0, None), axis=1) + np.minimum(q.max(axis=1), 0.0)


def solid_sdf(scene, p):
    """Signed distance to the union of the scene's solids (spheres, boxes); the plane is thin."""
    d = [
        np.linalg.norm(p - np.asarray(s.center), axis=1) - s.radius
        for s in scene.primitives
        if isinstance(s, Sphere)
    ]
    d += [box_sdf(b, p) for b in scene.primitives if isinstance(b, Box)]
    return np.min(d, axis=0)


def test_layout_files_and_images(tmp_path):
    out = generate_blender_scene(tmp_path / "scene", scene="blocks", **SMALL)
    assert out == tmp_path / "scene"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]  # no temp folder left
    for split, n in COUNTS.items():
        meta = json.loads((out / f"transforms_{split}.json").read_text())
        assert meta["camera_angle_x"] == pytest.approx(0.69)
        assert len(meta["frames"]) == n
        for i, frame in enumerate(meta["frames"]):
            assert frame["file_path"] == f"./{split}/r_{i}"
            c2w = np.array(frame["transform_matrix"])
            assert c2w.shape == (4, 4)
            np.testing.assert_allclose(c2w[3], [0, 0, 0, 1])
            np.testing.assert_allclose(c2w[:3, :3].T @ c2w[:3, :3], np.eye(3), atol=1e-12)
            assert np.linalg.norm(c2w[:3, 3]) == pytest.approx(4.0)
            assert c2w[2, 3] > 0  # upper hemisphere
            # the camera looks at the origin: -z axis points from the centre to the origin
            np.testing.assert_allclose(-c2w[:3, 2], -c2w[:3, 3] / 4.0, atol=1e-12)
            image = Image.open(out / f"{split}/r_{i}.png")
            assert image.mode == "RGBA" and image.size == (40, 24)
            rgba = np.asarray(image)
            depth = np.load(out / f"{split}/r_{i}_depth.npy")
            assert depth.dtype == np.float32 and depth.shape == (24, 40)
            background = ~np.isfinite(depth)
            assert np.array_equal(rgba[..., 3] == 0, background)
            assert set(np.unique(rgba[..., 3])) <= {0, 255}
            assert (rgba[background, :3] == 0).all()
            assert 0.05 < 1 - background.mean() < 0.95  # something, but not everything, in frame
        assert len(list((out / split).iterdir())) == 2 * n


def test_nerfstudio_blender_parser_reads_it(tmp_path):
    import torch
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig

    out = generate_blender_scene(tmp_path / "scene", scene="mixed", **SMALL)
    parser = BlenderDataParserConfig(data=out).setup()
    for split, n in COUNTS.items():
        outputs = parser.get_dataparser_outputs(split)
        cameras = outputs.cameras
        assert len(outputs.image_filenames) == n and len(cameras) == n
        focal = 0.5 * 40 / math.tan(0.5 * 0.69)
        np.testing.assert_allclose(cameras.fx.numpy(), focal, rtol=1e-6)
        assert torch.equal(cameras.fy, cameras.fx)
        assert (cameras.cx == 20.0).all() and (cameras.cy == 12.0).all()
        assert (cameras.width == 40).all() and (cameras.height == 24).all()
    # nerfstudio's rays (pixel centres, normalised directions) are ours
    rays = cameras.generate_rays(camera_indices=0, keep_shape=True)
    c2w = json.loads((out / "transforms_test.json").read_text())["frames"][0]["transform_matrix"]
    origins, dirs = ray_directions(np.array(c2w), 40, 24, 0.69)
    np.testing.assert_allclose(rays.origins.numpy(), origins, atol=1e-5)
    np.testing.assert_allclose(rays.directions.numpy(), dirs, atol=1e-5)


def test_ray_directions_unit_and_centred():
    c2w = camera_poses(1, 1, 1, seed=3)["train"][0]
    origins, dirs = ray_directions(c2w, 6, 4, 0.69)
    assert origins.shape == dirs.shape == (4, 6, 3)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(origins, np.broadcast_to(c2w[:3, 3], (4, 6, 3)))
    # even W, H: the four central pixels are symmetric about the optical axis (-z)
    centre = dirs[1:3, 2:4].mean(axis=(0, 1))
    np.testing.assert_allclose(centre / np.linalg.norm(centre), -c2w[:3, 2], atol=1e-12)
    # row 0 is the top of the image (+y), column 0 the left (-x)
    cam = dirs @ c2w[:3, :3]
    assert cam[0, 0, 1] > 0 > cam[-1, 0, 1] and cam[0, 0, 0] < 0 < cam[0, -1, 0]


@pytest.mark.parametrize("name", sorted(SCENES))
def test_depth_is_first_hit_on_a_surface(name):
    scene = SCENES[name]
    for c2w in camera_poses(2, 1, 1, seed=1)["train"]:
        rgba, depth = render_view(scene, c2w, 48, 40, 0.69)
        origins, dirs = ray_directions(c2w, 48, 40, 0.69)
        hit = np.isfinite(depth)
        assert np.array_equal(rgba[..., 3] == 255, hit) and hit.any() and (~hit).any()
        points = origins[hit] + depth[hit, None].astype(np.float64) * dirs[hit]
        distance = np.min([surface_distance(p, points) for p in scene.primitives], axis=0)
        assert distance.max() < 1e-4
        assert np.abs(points).max() <= 1.2 + 1e-4
        # nothing solid before the hit; background rays cross no solid within t in [2, 6]
        s = np.linspace(0.5, 0.995, 60)
        before = origins[hit][:, None] + (s[None, :] * depth[hit, None])[..., None] * dirs[hit][:, None]
        assert (solid_sdf(scene, before.reshape(-1, 3)) > 0).all()
        t = np.linspace(2.0, 6.0, 200)
        miss = origins[~hit][:, None] + t[None, :, None] * dirs[~hit][:, None]
        assert (solid_sdf(scene, miss.reshape(-1, 3)) > 0).all()


def test_sphere_depth_exact():
    scene = SCENES["spheres"]
    c2w = camera_poses(1, 1, 1, seed=0)["val"][0]
    _, depth = render_view(scene, c2w, 32, 32, 0.69)
    origins, dirs = ray_directions(c2w, 32, 32, 0.69)
    hit = np.isfinite(depth)
    points = origins[hit] + depth[hit, None] * dirs[hit]
    residual = [np.abs(np.linalg.norm(points - s.center, axis=1) - s.radius) for s in scene.primitives]
    assert np.min(residual, axis=0).max() < 1e-4
    assert len({int(i) for i in np.argmin(residual, axis=0)}) == 3  # all three spheres in view


def test_deterministic_by_seed(tmp_path):
    a = generate_blender_scene(tmp_path / "a", seed=5, **SMALL)
    b = generate_blender_scene(tmp_path / "b", seed=5, **SMALL)
    c = generate_blender_scene(tmp_path / "c", seed=6, **SMALL)
    assert files(a) == files(b)

    def poses(folder, split):
        return [
            f["transform_matrix"]
            for f in json.loads((folder / f"transforms_{split}.json").read_text())["frames"]
        ]

    assert not np.allclose(poses(a, "train"), poses(c, "train"))
    assert poses(a, "val") == poses(c, "val") and poses(a, "test") == poses(c, "test")
    # val / test views are not train views
    train = np.array(poses(a, "train"))[:, :3, 3]
    for split in ("val", "test"):
        held_out = np.array(poses(a, split))[:, :3, 3]
        assert np.linalg.norm(train[:, None] - held_out[None], axis=-1).min() > 1e-3


BAD_ARGUMENTS = [
    (dict(width=0), "width"),
    (dict(height=-2), "height"),
    (dict(num_train=0), "num_train"),
    (dict(num_val=0), "num_val"),
    (dict(num_test=-1), "num_test"),
    (dict(scene="teapot"), "spheres, blocks, mixed"),
    (dict(seed=-1), "seed"),
    (dict(camera_angle_x=0.0), "camera_angle_x"),
    (dict(camera_angle_x=4.0), "camera_angle_x"),
]


@pytest.mark.parametrize("kwargs, message", BAD_ARGUMENTS)
def test_bad_arguments_raise(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_blender_scene(tmp_path / "out", **{**SMALL, **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_output_under_a_file_raises(tmp_path):
    (tmp_path / "file").write_text("x")
    for target in (tmp_path / "file" / "out", tmp_path / "file" / "a" / "out"):
        with pytest.raises(ValueError, match="not a directory"):
            generate_blender_scene(target, **SMALL)
    with pytest.raises(ValueError, match="not a directory"):
        generate_blender_scene(tmp_path / "file", **SMALL, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["file"] and (tmp_path / "file").read_text() == "x"


CLI = [sys.executable, "-m", "nerfinternals.data.synthetic"]


def test_cli(tmp_path):
    """Real processes (started together, start-up is slow): a good run writes the scene; each bad one
    exits 2 with one `error:` line on stderr, no traceback, and leaves nothing behind."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("keep")
    runs = {
        "good": ([tmp_path / "new", "--width", "8", "--height", "6", "--num-train", "2"], None),
        "width": ([tmp_path / "bad", "--width", "0"], "width"),
        "under_file": ([tmp_path / "file" / "out"], "not a directory"),
        "existing": ([tmp_path / "old"], "not empty"),
    }
    processes = {
        name: subprocess.Popen(
            [*CLI, "--output-dir", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, (args, _) in runs.items()
    }
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        message = runs[name][1]
        if message is None:
            assert process.returncode == 0, stderr
            continue
        assert process.returncode == 2, (name, stderr)
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (name, stderr)
        assert "Traceback" not in stdout + stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "new", "old"]
    assert files(tmp_path / "old") == {"keep.txt": b"keep"}
    assert Image.open(tmp_path / "new" / "train" / "r_1.png").size == (8, 6)
    assert len(json.loads((tmp_path / "new" / "transforms_test.json").read_text())["frames"]) == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num-val", "0"], "num_val"),
        (["--scene", "teapot"], "spheres, blocks, mixed"),
        (["--seed", "-3"], "seed"),
    ],
)
def test_entrypoint_errors(tmp_path, monkeypatch, capsys, args, message):
    """The same error path in-process, for the remaining bad arguments."""
    monkeypatch.setattr(sys, "argv", ["ns-internals-scene", "--output-dir", str(tmp_path / "out"), *args])
    with pytest.raises(SystemExit) as exit_info:
        synthetic.entrypoint()
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert message in captured.err
    assert list(tmp_path.iterdir()) == []


def test_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    generate_blender_scene(out, **SMALL)  # an existing empty folder is fine
    (out / "keep.txt").write_text("old")
    before = files(out)
    with pytest.raises(ValueError, match="not empty"):
        generate_blender_scene(out, **{**SMALL, "seed": 1})
    assert files(out) == before
    generate_blender_scene(out, **{**SMALL, "seed": 1}, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "transforms_train.json").exists()
    assert files(out) != before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def failing_write_frame(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return original(*args)

    original = synthetic.write_frame
    monkeypatch.setattr(synthetic, "write_frame", failing_write_frame)
    with pytest.raises(RuntimeError):
        generate_blender_scene(tmp_path / "a" / "b" / "out", **SMALL)
    assert list(tmp_path.iterdir()) == []  # missing parents created for it are gone too

    old = tmp_path / "old"
    old.mkdir()
    (old / "keep.txt").write_text("old")
    calls.clear()
    with pytest.raises(RuntimeError):
        generate_blender_scene(old, **SMALL, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["old"] and files(old) == {"keep.txt": b"old"}


def test_missing_parents_are_created(tmp_path):
    out = generate_blender_scene(tmp_path / "a" / "b" / "out", **SMALL)
    assert (out / "transforms_val.json").exists()
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["out"]
    (tmp_path / "plain").mkdir()  # same permissions as a plain mkdir (not mkdtemp's 0o700)
    assert out.stat().st_mode == (tmp_path / "plain").stat().st_mode == (out / "train").stat().st_mode
