"""Small synthetic scenes in the Blender (NeRF-synthetic) or LLFF format, rendered by analytic ray casting.

A scene is a handful of primitives — spheres, axis-aligned boxes and an optional finite ground
square at z = const — with a solid colour or a checker / stripes texture evaluated at the hit point.
Shading is view-independent: base colour x (ambient + Lambert with a fixed light direction); no
shadows, no anti-aliasing. Every primitive lies inside [-1.2, 1.2]^3 (nerfstudio's Blender scene box
is [-1.5, 1.5]^3); cameras sit on a sphere of radius 4 in the upper hemisphere looking at the origin.

Output layout (what nerfstudio's ``blender-data`` parser reads; it composites RGBA onto white)::

    output_dir/
      transforms_{train,val,test}.json   {"camera_angle_x": float,
                                          "frames": [{"file_path": "./train/r_0",
                                                      "transform_matrix": 4x4 camera-to-world}, ...]}
      train/r_0.png                      RGBA 8 bit; alpha 0 (and colour 0) where the ray hits nothing
      train/r_0_depth.npy                float32 (H, W) ground-truth depth, see below
      val/..., test/...

Cameras follow the OpenGL / Blender convention (camera looks along -z, +y up, +x right). Pixel
(row i, column j) has its centre at (j + 0.5, i + 0.5); principal point (W/2, H/2); square pixels
with fx = fy = 0.5 W / tan(camera_angle_x / 2), exactly as nerfstudio's Blender parser derives them.

Depth convention: ``depth[i, j]`` is the distance t from the camera centre to the first hit along the
*unit-length* ray direction, i.e. the hit point is ``origin + t * direction`` with
``|direction| = 1`` — the same t nerfstudio's normalised rays (and its samplers' t in [near, far])
use. It is ``inf`` where the ray hits nothing (exactly where alpha is 0). It is not the z-depth.

LLFF format (``--format llff``, :func:`generate_llff_scene`): a forward-facing capture of the same
primitives in front of an infinite checker backdrop (the plane y = -1.6, so every pixel has a finite
depth). The cameras sit on a jittered ``cols x rows`` grid in the plane y = 4 (spacing 0.3), each
looking at a point near the origin (world +z up), as a hand-held LLFF capture::

    output_dir/
      poses_bounds.npy          float64 (N, 17): per image the LLFF 3x5 matrix [down, right, back,
                                centre, (H, W, focal)] flattened row-major, then the near / far bound
                                (min / max z-depth of the image's pixels, z-depth = distance along
                                the optical axis)
      images/image_000.png      RGB 8 bit, full resolution (W x H)
      images_2/, images_4/      the same images, each d x d block averaged (PIL BOX) to W/d x H/d
      depth/image_000.npy       float32 (H, W) ground-truth depth (distance along the unit ray, as above)
      depth_2/, depth_4/        float32 (H/d, W/d) depth ray-cast at the downscaled pixel centres

Same arguments give byte-identical files. Run ``ns-internals-scene -h`` (or
``python -m nerfinternals.data.synthetic -h``) for the command line.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro
from PIL import Image

Color = tuple[float, float, float]
Vec3 = tuple[float, float, float]

CAMERA_RADIUS = 4.0
"""Distance of every camera from the origin (nerfstudio's vanilla-nerf samples t in [2, 6])."""
TRAIN_ELEVATION_DEG = (15.0, 60.0)
"""Range of the random train elevations, degrees above the xy-plane."""
VAL_ELEVATION_DEG = 30.0
TEST_ELEVATION_DEG = 45.0
LIGHT_DIRECTION = np.array([0.35, 0.5, 1.0]) / np.linalg.norm([0.35, 0.5, 1.0])
"""Unit vector towards the (directional) light."""
AMBIENT = 0.3
"""Shade = base colour x (AMBIENT + (1 - AMBIENT) x max(n . light, 0))."""
T_MIN = 1e-6
"""Hits closer than this to the ray origin are ignored."""
LLFF_CAMERA_Y = 4.0
"""LLFF captures: cameras in the plane y = LLFF_CAMERA_Y, looking towards -y."""
LLFF_GRID_SPACING = 0.3
"""Distance between neighbouring cameras of the LLFF grid (before jitter)."""
LLFF_GRID_HEIGHT = 0.3
"""Height (z) of the LLFF grid's centre."""
LLFF_POSITION_JITTER = 0.04
"""Standard deviation of the random offset of each LLFF camera centre (world units)."""
LLFF_TARGET_JITTER = 0.1
"""Standard deviation of the random offset of each LLFF camera's look-at point around the origin."""


# ----------------------------------------------------------------------------------------------
# Scene description
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Material:
    """Base colour, optionally a two-colour pattern evaluated from the 3D hit point."""

    color: Color
    pattern: Literal["solid", "checker", "stripes"] = "solid"
    color2: Color = (1.0, 1.0, 1.0)
    scale: float = 0.25
    """Cell size (checker) or band height along z (stripes), world units."""


@dataclass(frozen=True)
class Sphere:
    center: Vec3
    radius: float
    material: Material


@dataclass(frozen=True)
class Box:
    """Axis-aligned box [lo, hi]."""

    lo: Vec3
    hi: Vec3
    material: Material


@dataclass(frozen=True)
class Plane:
    """Finite ground square |x|, |y| <= half_size at height z, visible from both sides."""

    z: float
    half_size: float
    material: Material


@dataclass(frozen=True)
class Backdrop:
    """Infinite plane y = const, visible from both sides (the background of LLFF captures)."""

    y: float
    material: Material


Primitive = Sphere | Box | Plane | Backdrop


@dataclass(frozen=True)
class Scene:
    """A named set of primitives on a transparent background."""

    description: str
    primitives: tuple[Primitive, ...]


LLFF_BACKDROP = Backdrop(-1.6, Material((0.9, 0.85, 0.75), "checker", (0.55, 0.65, 0.8), scale=0.4))
"""Behind every primitive (all lie in [-1.2, 1.2]^3) and filling every LLFF camera's view."""

SCENES: dict[str, Scene] = {
    "spheres": Scene(
        "three coloured spheres, no ground plane",
        (
            Sphere((0.55, -0.3, 0.0), 0.5, Material((0.85, 0.15, 0.1))),
            Sphere((-0.55, -0.3, 0.1), 0.42, Material((0.15, 0.7, 0.2))),
            Sphere((0.0, 0.6, -0.1), 0.48, Material((0.15, 0.3, 0.9))),
        ),
    ),
    "blocks": Scene(
        "two boxes and a checker sphere on a checker ground square",
        (
            Plane(-0.5, 1.0, Material((0.45, 0.45, 0.5), "checker", (0.8, 0.8, 0.75), scale=0.3)),
            Box((-0.9, -0.2, -0.5), (-0.1, 0.6, 0.3), Material((0.95, 0.55, 0.1))),
            Box((0.2, 0.15, -0.5), (0.75, 0.7, 0.75), Material((0.1, 0.6, 0.65))),
            Sphere((0.35, -0.55, -0.1), 0.4, Material((0.55, 0.15, 0.7), "checker", (0.95, 0.85, 0.2), 0.2)),
        ),
    ),
    "mixed": Scene(
        "a striped sphere and a checker box, no ground plane",
        (
            Sphere((-0.45, 0.1, 0.05), 0.6, Material((0.9, 0.2, 0.3), "stripes", (0.95, 0.9, 0.85), 0.18)),
            Box(
                (0.15, -0.75, -0.55),
                (0.9, 0.05, 0.35),
                Material((0.2, 0.35, 0.85), "checker", (0.9, 0.8, 0.3)),
            ),
        ),
    ),
}


# ----------------------------------------------------------------------------------------------
# Cameras and rays
# ----------------------------------------------------------------------------------------------


def focal_length(width: int, camera_angle_x: float) -> float:
    """fx = fy = 0.5 W / tan(camera_angle_x / 2) (nerfstudio's Blender parser)."""
    return 0.5 * width / math.tan(0.5 * camera_angle_x)


def ray_directions(
    c2w: np.ndarray, width: int, height: int, camera_angle_x: float
) -> tuple[np.ndarray, np.ndarray]:
    """World-space ray origins (H, W, 3) and unit directions (H, W, 3) for an OpenGL camera-to-world.

    Pixel (i, j) goes through camera point ((j + 0.5 - W/2) / f, -(i + 0.5 - H/2) / f, -1).
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    f = focal_length(width, camera_angle_x)
    u = (np.arange(width) + 0.5 - 0.5 * width) / f
    v = -(np.arange(height) + 0.5 - 0.5 * height) / f
    cam = np.stack(np.broadcast_arrays(u[None, :], v[:, None], -np.ones((1, 1))), axis=-1)
    dirs = cam @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    origins = np.broadcast_to(c2w[:3, 3], dirs.shape).copy()
    return origins, dirs


def look_at(eye: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """OpenGL camera-to-world (4, 4) at `eye` looking at `target` (origin), world +z up."""
    target = np.zeros(3) if target is None else target
    z = eye - target
    z = z / np.linalg.norm(z)
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def orbit_pose(azimuth: float, elevation: float, radius: float = CAMERA_RADIUS) -> np.ndarray:
    """Camera-to-world on a sphere of `radius` (angles in radians) looking at the origin."""
    eye = radius * np.array(
        [
            math.cos(elevation) * math.cos(azimuth),
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
        ]
    )
    return look_at(eye)


def camera_poses(num_train: int, num_val: int, num_test: int, seed: int) -> dict[str, list[np.ndarray]]:
    """Train: random azimuth / elevation from default_rng(seed); val / test: evenly spaced azimuths
    at fixed elevations, offset by a quarter / three quarters of a step."""
    rng = np.random.default_rng(seed)
    azimuths = rng.uniform(0.0, 2.0 * math.pi, num_train)
    elevations = np.radians(rng.uniform(*TRAIN_ELEVATION_DEG, num_train))
    poses = {"train": [orbit_pose(a, e) for a, e in zip(azimuths, elevations, strict=True)]}
    for split, n, offset, elevation in (
        ("val", num_val, 0.25, VAL_ELEVATION_DEG),
        ("test", num_test, 0.75, TEST_ELEVATION_DEG),
    ):
        poses[split] = [
            orbit_pose(2.0 * math.pi * (k + offset) / n, math.radians(elevation)) for k in range(n)
        ]
    return poses


def llff_poses(cols: int, rows: int, seed: int) -> list[np.ndarray]:
    """Forward-facing OpenGL camera-to-worlds on a jittered ``cols x rows`` grid in the plane y = 4.

    Row-major from the top-left camera (as seen from behind the cameras); each camera looks at a
    point near the origin with world +z up. Jitter from ``default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    xs = (np.arange(cols) - 0.5 * (cols - 1)) * LLFF_GRID_SPACING
    zs = LLFF_GRID_HEIGHT - (np.arange(rows) - 0.5 * (rows - 1)) * LLFF_GRID_SPACING
    poses = []
    for z in zs:
        for x in xs:
            # seen from behind a camera looking along -y, world -x is to the right
            eye = np.array([-x, LLFF_CAMERA_Y, z]) + rng.normal(0.0, LLFF_POSITION_JITTER, 3)
            poses.append(look_at(eye, rng.normal(0.0, LLFF_TARGET_JITTER, 3)))
    return poses


def llff_matrix(c2w: np.ndarray, width: int, height: int, focal: float) -> np.ndarray:
    """The LLFF 3x5 matrix of an OpenGL camera-to-world: columns [down, right, back, centre, (H, W, f)]."""
    c2w = np.asarray(c2w, dtype=np.float64)
    hwf = np.array([height, width, focal], dtype=np.float64)
    return np.stack([-c2w[:3, 1], c2w[:3, 0], c2w[:3, 2], c2w[:3, 3], hwf], axis=1)


# ----------------------------------------------------------------------------------------------
# Intersections: rays o, d (N, 3), |d| = 1 -> t (N,) (inf on a miss), outward normal (N, 3).
# A ray starting inside a sphere or box does not see it.
# ----------------------------------------------------------------------------------------------


def intersect_sphere(o: np.ndarray, d: np.ndarray, sphere: Sphere) -> tuple[np.ndarray, np.ndarray]:
    """Nearest root of |o + t d - c|^2 = r^2."""
    oc = o - np.asarray(sphere.center)
    b = np.einsum("ij,ij->i", d, oc)
    disc = b * b - (np.einsum("ij,ij->i", oc, oc) - sphere.radius**2)
    with np.errstate(invalid="ignore"):
        t = -b - np.sqrt(disc)
    t = np.where((disc >= 0.0) & (t > T_MIN), t, np.inf)
    normal = (oc + np.where(np.isfinite(t), t, 0.0)[:, None] * d) / sphere.radius
    return t, normal


def intersect_box(o: np.ndarray, d: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Slab method: t = max over axes of the entering distances, if before every exit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t0 = (np.asarray(box.lo) - o) * inv
        t1 = (np.asarray(box.hi) - o) * inv
    t_enter, t_exit = np.fmin(t0, t1), np.fmax(t0, t1)
    axis = np.argmax(t_enter, axis=1)
    t_near, t_far = t_enter.max(axis=1), t_exit.min(axis=1)
    t = np.where((t_near <= t_far) & (t_near > T_MIN), t_near, np.inf)
    normal = np.zeros_like(d)
    rows = np.arange(len(d))
    normal[rows, axis] = -np.sign(d[rows, axis])
    return t, normal


def intersect_plane(o: np.ndarray, d: np.ndarray, plane: Plane) -> tuple[np.ndarray, np.ndarray]:
    """z = plane.z within the square; the normal faces the ray."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (plane.z - o[:, 2]) / d[:, 2]
    t = np.where(np.isfinite(t) & (t > T_MIN), t, np.inf)
    xy = o[:, :2] + np.where(np.isfinite(t), t, 0.0)[:, None] * d[:, :2]
    t = np.where(np.all(np.abs(xy) <= plane.half_size, axis=1), t, np.inf)
    normal = np.zeros_like(d)
    normal[:, 2] = np.where(d[:, 2] > 0.0, -1.0, 1.0)
    return t, normal


def intersect_backdrop(o: np.ndarray, d: np.ndarray, backdrop: Backdrop) -> tuple[np.ndarray, np.ndarray]:
    """y = backdrop.y; the normal faces the ray."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (backdrop.y - o[:, 1]) / d[:, 1]
    t = np.where(np.isfinite(t) & (t > T_MIN), t, np.inf)
    normal = np.zeros_like(d)
    normal[:, 1] = np.where(d[:, 1] > 0.0, -1.0, 1.0)
    return t, normal


def intersect(o: np.ndarray, d: np.ndarray, primitive: Primitive) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch on the primitive's type."""
    if isinstance(primitive, Sphere):
        return intersect_sphere(o, d, primitive)
    if isinstance(primitive, Box):
        return intersect_box(o, d, primitive)
    if isinstance(primitive, Plane):
        return intersect_plane(o, d, primitive)
    if isinstance(primitive, Backdrop):
        return intersect_backdrop(o, d, primitive)
    raise TypeError(f"unknown primitive {primitive!r}")


# ----------------------------------------------------------------------------------------------
# Shading and rendering
# ----------------------------------------------------------------------------------------------


def base_color(material: Material, points: np.ndarray, normals: np.ndarray, flat: bool) -> np.ndarray:
    """(N, 3) colour of the material at hit points. Patterns are solid 3D textures; on `flat` faces
    (box, plane) the coordinate along the normal is ignored so a face never straddles a cell boundary."""
    color = np.broadcast_to(np.asarray(material.color, dtype=np.float64), points.shape)
    if material.pattern == "solid":
        return color
    cells = np.floor(points / material.scale).astype(np.int64)
    if flat:
        cells = np.where(np.abs(normals) > 0.5, 0, cells)
    if material.pattern == "checker":
        odd = cells.sum(axis=1) % 2 == 1
    elif material.pattern == "stripes":
        odd = cells[:, 2] % 2 == 1
    else:
        raise ValueError(f"unknown pattern {material.pattern!r}")
    return np.where(odd[:, None], np.asarray(material.color2, dtype=np.float64), color)


def shade(color: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """View-independent Lambert: color x (AMBIENT + (1 - AMBIENT) max(n . l, 0))."""
    lambert = np.clip(normals @ LIGHT_DIRECTION, 0.0, None)
    return color * (AMBIENT + (1.0 - AMBIENT) * lambert)[:, None]


def render_view(
    scene: Scene, c2w: np.ndarray, width: int, height: int, camera_angle_x: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast one view: RGBA uint8 (H, W, 4) and depth float32 (H, W) (see the module docstring)."""
    origins, dirs = ray_directions(c2w, width, height, camera_angle_x)
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    depth = np.full(len(o), np.inf)
    rgb = np.zeros((len(o), 3))
    for primitive in scene.primitives:
        t, normals = intersect(o, d, primitive)
        closer = t < depth
        depth[closer] = t[closer]
        points = o[closer] + t[closer, None] * d[closer]
        color = base_color(
            primitive.material, points, normals[closer], flat=not isinstance(primitive, Sphere)
        )
        rgb[closer] = shade(color, normals[closer])
    hit = np.isfinite(depth)
    rgba = np.zeros((len(o), 4), dtype=np.uint8)
    rgba[hit, :3] = np.round(np.clip(rgb[hit], 0.0, 1.0) * 255.0).astype(np.uint8)
    rgba[hit, 3] = 255
    return rgba.reshape(height, width, 4), depth.astype(np.float32).reshape(height, width)


# ----------------------------------------------------------------------------------------------
# Writing a dataset
# ----------------------------------------------------------------------------------------------


def write_frame(folder: Path, split: str, index: int, rgba: np.ndarray, depth: np.ndarray) -> dict:
    """Write `split/r_{index}.png` and `split/r_{index}_depth.npy`; return the frame's file_path entry."""
    stem = f"{split}/r_{index}"
    Image.fromarray(rgba).save(folder / f"{stem}.png")
    np.save(folder / f"{stem}_depth.npy", depth)
    return {"file_path": f"./{stem}"}


def _check_arguments(
    output_dir: Path, scene: str, width: int, height: int, counts: dict[str, int], seed: int, angle: float
) -> None:
    """Raise ValueError naming the first bad argument."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; valid scenes: {', '.join(SCENES)}")
    for name, value in {"width": width, "height": height, **counts}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0.0 < angle < math.pi:
        raise ValueError(f"camera_angle_x must be in (0, pi) radians, got {angle!r}")
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output path {output_dir} exists and is not a directory")
    for ancestor in output_dir.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise ValueError(f"cannot create {output_dir}: {ancestor} is not a directory")
            break


def _make_parents(parent: Path) -> list[Path]:
    """mkdir -p `parent`; return the folders created, innermost first (to undo on failure)."""
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _remove_empty(missing)
        raise ValueError(f"cannot create folder {parent}: {err.strerror or err}") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _move_into_place(new: Path, target: Path) -> None:
    """Rename the finished folder `new` to `target`; an existing `target` is removed only afterwards."""
    if not target.exists():
        os.replace(new, target)
        return
    old = new.with_name(new.name + "-old")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old)


def generate_blender_scene(
    output_dir: Path,
    scene: str = "spheres",
    width: int = 32,
    height: int = 32,
    num_train: int = 20,
    num_val: int = 4,
    num_test: int = 4,
    seed: int = 0,
    camera_angle_x: float = 0.69,
    overwrite: bool = False,
    *,
    progress: bool = False,
) -> Path:
    """Render `scene` into `output_dir` in the Blender format; return `output_dir`.

    All frames are rendered into a temporary folder beside `output_dir`, which is renamed into place
    at the end: on any error nothing is left behind, and with `overwrite` an existing folder is
    replaced only once the new one is complete. Missing parent folders are created (and removed again
    on error). Raises ValueError for bad arguments, a non-empty `output_dir` without `overwrite`, or a
    parent that is not a writable folder. `progress` shows a rich progress bar (on stderr).
    """
    output_dir = Path(output_dir).absolute()
    counts = {"num_train": num_train, "num_val": num_val, "num_test": num_test}
    _check_arguments(output_dir, scene, width, height, counts, seed, camera_angle_x)
    poses = camera_poses(num_train, num_val, num_test, seed)
    return _generate_atomically(
        output_dir,
        overwrite,
        lambda tmp: _render_all(tmp, SCENES[scene], width, height, poses, camera_angle_x, progress),
    )


def generate_llff_scene(
    output_dir: Path,
    scene: str = "spheres",
    width: int = 32,
    height: int = 32,
    grid: tuple[int, int] = (5, 4),
    seed: int = 0,
    camera_angle_x: float = 0.69,
    downscale_factors: tuple[int, ...] = (2, 4),
    overwrite: bool = False,
    *,
    progress: bool = False,
) -> Path:
    """Render a forward-facing capture of `scene` into `output_dir` in the LLFF format; return `output_dir`.

    ``grid = (cols, rows)`` cameras (see :func:`llff_poses`); the layout is in the module docstring.
    Every downscale factor must divide `width` and `height`. Written atomically, with the same
    errors as :func:`generate_blender_scene`.
    """
    output_dir = Path(output_dir).absolute()
    grid = tuple(grid)
    if len(grid) != 2:
        raise ValueError(f"grid must be (columns, rows), got {grid!r}")
    counts = {"grid columns": grid[0], "grid rows": grid[1]}
    _check_arguments(output_dir, scene, width, height, counts, seed, camera_angle_x)
    factors = tuple(downscale_factors)
    for factor in factors:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise ValueError(f"downscale factors must be integers >= 2, got {factor!r}")
        if width % factor or height % factor:
            raise ValueError(
                f"downscale factor {factor} does not divide the image size {width}x{height}: "
                f"expected width and height divisible by {factor}"
            )
    if len(set(factors)) != len(factors):
        raise ValueError(f"downscale factors repeat: {factors}")
    full = Scene(SCENES[scene].description, (*SCENES[scene].primitives, LLFF_BACKDROP))
    poses = llff_poses(*grid, seed)
    return _generate_atomically(
        output_dir,
        overwrite,
        lambda tmp: _render_llff(tmp, full, width, height, poses, camera_angle_x, factors, progress),
    )


def _generate_atomically(output_dir: Path, overwrite: bool, render) -> Path:
    """Run ``render(tmp)`` on a fresh folder beside `output_dir`, then move it into place."""
    try:
        non_empty = output_dir.is_dir() and any(output_dir.iterdir())
    except OSError as err:
        raise ValueError(f"cannot read output folder {output_dir}: {err.strerror or err}") from None
    if non_empty and not overwrite:
        raise ValueError(f"output folder {output_dir} exists and is not empty (pass overwrite / --overwrite)")

    created = _make_parents(output_dir.parent)
    try:
        tmp = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=".tmp-"))
    except OSError as err:
        _remove_empty(created)
        raise ValueError(f"cannot write to {output_dir.parent}: {err.strerror or err}") from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0o700; give it a plain mkdir's mode
        render(tmp)
        _move_into_place(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    return output_dir


def _render_all(
    folder: Path,
    scene: Scene,
    width: int,
    height: int,
    poses: dict[str, list[np.ndarray]],
    camera_angle_x: float,
    progress: bool,
) -> None:
    """Render every frame of every split into `folder`, then write the transforms files."""
    from rich.console import Console
    from rich.progress import track

    jobs = [(split, i, c2w) for split, split_poses in poses.items() for i, c2w in enumerate(split_poses)]
    frames: dict[str, list[dict]] = {split: [] for split in poses}
    for split in poses:
        (folder / split).mkdir()
    for split, i, c2w in track(
        jobs, description="rendering frames", disable=not progress, console=Console(stderr=True)
    ):
        rgba, depth = render_view(scene, c2w, width, height, camera_angle_x)
        frame = write_frame(folder, split, i, rgba, depth)
        frames[split].append({**frame, "transform_matrix": c2w.tolist()})
    for split, split_frames in frames.items():
        meta = {"camera_angle_x": camera_angle_x, "frames": split_frames}
        (folder / f"transforms_{split}.json").write_text(json.dumps(meta, indent=2) + "\n")


def _render_llff(
    folder: Path,
    scene: Scene,
    width: int,
    height: int,
    poses: list[np.ndarray],
    camera_angle_x: float,
    factors: tuple[int, ...],
    progress: bool,
) -> None:
    """Render every LLFF view into `folder` (images, downscaled images, depths), then poses_bounds.npy."""
    from rich.console import Console
    from rich.progress import track

    for name in ("images", "depth", *(f"{kind}_{f}" for f in factors for kind in ("images", "depth"))):
        (folder / name).mkdir()
    focal = focal_length(width, camera_angle_x)
    rows = []
    for i, c2w in track(
        list(enumerate(poses)),
        description="rendering views",
        disable=not progress,
        console=Console(stderr=True),
    ):
        stem = f"image_{i:03d}"
        rgba, depth = render_view(scene, c2w, width, height, camera_angle_x)
        if not np.isfinite(depth).all():
            raise RuntimeError(f"view {i} sees past the backdrop")  # cannot happen with llff_poses
        image = Image.fromarray(np.ascontiguousarray(rgba[..., :3]))
        image.save(folder / "images" / f"{stem}.png")
        np.save(folder / "depth" / f"{stem}.npy", depth)
        for f in factors:
            small = image.resize((width // f, height // f), Image.Resampling.BOX)
            small.save(folder / f"images_{f}" / f"{stem}.png")
            np.save(
                folder / f"depth_{f}" / f"{stem}.npy",
                render_view(scene, c2w, width // f, height // f, camera_angle_x)[1],
            )
        _, dirs = ray_directions(c2w, width, height, camera_angle_x)
        z_depth = depth.astype(np.float64) * (dirs @ -np.asarray(c2w)[:3, 2])
        bounds = [z_depth.min(), z_depth.max()]
        rows.append(np.concatenate([llff_matrix(c2w, width, height, focal).reshape(-1), bounds]))
    np.save(folder / "poses_bounds.npy", np.stack(rows))


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


@dataclass
class GenerateScene:
    """Render a small synthetic scene with ground-truth depth. --format blender (nerfstudio's
    blender-data parser): transforms_{train,val,test}.json, RGBA PNGs and float32 depth .npy files
    (distance along the unit ray direction, inf on background). --format llff (the llff-data parser):
    a forward-facing capture in front of a backdrop on a --grid of cameras, poses_bounds.npy,
    images/, images_<d>/ and depth/, depth_<d>/ for each --downscale-factors d."""

    output_dir: Path
    """Folder to create (must not exist or be empty, unless --overwrite)."""
    format: Literal["blender", "llff"] = "blender"
    """Dataset layout: blender (360-degree views, three splits) or llff (forward-facing, one folder)."""
    scene: Annotated[str, tyro.conf.arg(help=f"Scene to render, one of: {', '.join(SCENES)}.")] = "spheres"
    width: int = 32
    """Image width in pixels."""
    height: int = 32
    """Image height in pixels."""
    num_train: int = 20
    """Number of train views (random poses drawn from --seed)."""
    num_val: int = 4
    """Number of val views (evenly spaced azimuths)."""
    num_test: int = 4
    """Number of test views (evenly spaced azimuths)."""
    seed: int = 0
    """Seed of the random train poses; same arguments give byte-identical files."""
    camera_angle_x: float = 0.69
    """Horizontal field of view in radians; fx = fy = 0.5 * width / tan(camera_angle_x / 2)."""
    grid: tuple[int, int] = (5, 4)
    """LLFF format: camera grid columns and rows (one view per camera; --num-* are not used)."""
    downscale_factors: tuple[int, ...] = (2, 4)
    """LLFF format: also write images_<d>/ and depth_<d>/ for each factor (each must divide the size)."""
    overwrite: bool = False
    """Replace an existing non-empty output folder (only once the new one is complete)."""

    @property
    def num_views(self) -> int:
        if self.format == "llff":
            return self.grid[0] * self.grid[1]
        return self.num_train + self.num_val + self.num_test

    def main(self) -> Path:
        if self.format == "llff":
            return generate_llff_scene(
                self.output_dir,
                self.scene,
                self.width,
                self.height,
                self.grid,
                self.seed,
                self.camera_angle_x,
                self.downscale_factors,
                self.overwrite,
                progress=True,
            )
        return generate_blender_scene(
            self.output_dir,
            self.scene,
            self.width,
            self.height,
            self.num_train,
            self.num_val,
            self.num_test,
            self.seed,
            self.camera_angle_x,
            self.overwrite,
            progress=True,
        )


def _one_line(err: Exception) -> str:
    return str(err).replace("\r", " ").replace("\n", " ")


def entrypoint(prog: str | None = None) -> None:
    """Console script `ns-internals-scene`: bad arguments print one `error:` line and exit with 2."""
    args = tyro.cli(GenerateScene, prog=prog)
    try:
        path = args.main()
    except ValueError as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {args.num_views} frames of scene {args.scene!r} to {path}")


if __name__ == "__main__":
    entrypoint(prog="python -m nerfinternals.data.synthetic")
