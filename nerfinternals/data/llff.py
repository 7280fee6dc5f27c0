"""``llff-data``: nerfstudio dataparser for forward-facing captures in the LLFF layout.

Reads what the original NeRF's LLFF loader reads::

    data/
      poses_bounds.npy     float (N, 17): per image a 3x5 matrix, row-major — columns [down, right,
                           back] camera axes, the camera centre, and (H, W, focal) of images/ — then
                           the near and far depth bound of the image
      images/              N images (png / jpg / jpeg, sorted by name = row order), H x W
      images_<d>/          optional: the same images downscaled by d (W/d x H/d)

and applies the original NeRF's conventions: the LLFF axes [down, right, back] become nerfstudio's
(OpenGL) [right, up, back]; positions and bounds are scaled by ``1 / (min bound * scale_factor)``
(``bd_factor``, 0.75 in NeRF: the nearest content ends up at distance 1/0.75, beyond NDC's near
plane at 1); the poses are recentred on their average pose (mean centre, mean viewing axis, mean
up). Rows must match images one to one. With ``downscale_factor`` d and no ``images_<d>/`` folder,
the images of ``images/`` are box-filtered by d and written to ``images_<d>/`` (or, when the data
folder is read-only, to a cache folder), as the original loader does.

Each camera gets fx = fy = focal / d and the principal point at the image centre (nerfstudio's
pixel-centre convention). The train / eval split holds out every ``eval_interval``-th image (LLFF's
convention, default 8) or, with ``eval_mode fraction``, the authors' equally spaced 90/10 split.

The outputs' ``metadata`` carry the scene bounds after scaling (``near_plane`` = 0.9 x min bound,
``far_plane`` = max bound, as NeRF without NDC) and the intrinsics of the NDC reference camera
(``ndc_width``, ``ndc_height``, ``ndc_focal``), which :mod:`nerfinternals.data.ndc` uses.

This module is imported during nerfstudio's dataparser discovery, while nerfstudio's datamanager
module is still importing: it imports only light nerfstudio modules (base_dataparser, cameras,
scene_box, dataparser utils, the dataparser registry), never engine / pipelines / datamanagers.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.data.utils.dataparsers_utils import (
    get_train_eval_split_all,
    get_train_eval_split_fraction,
    get_train_eval_split_interval,
)
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from PIL import Image
from rich.console import Console

CONSOLE = Console(width=120, stderr=True)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
NEAR_MARGIN = 0.9
"""near = NEAR_MARGIN x the smallest bound (the original NeRF's choice without NDC)."""


class LLFFDataError(ValueError):
    """Bad LLFF data: one line saying what was expected and what was found.

    Uncaught in a command-line program (``ns-train``), it is printed as ``error: <message>`` without
    a traceback (exit status 1); callers that catch it (eval.py, tests) see an ordinary ValueError.
    """


def _report_without_traceback(previous):
    def hook(exc_type, exc, tb):
        if isinstance(exc, LLFFDataError):
            print(f"error: {exc}", file=sys.stderr)
        else:
            previous(exc_type, exc, tb)

    hook._llff_hook = True  # type: ignore[attr-defined]
    return hook


def _error(message: str) -> LLFFDataError:
    """The error to raise; installs (once) the one-line report for when nobody catches it."""
    if not getattr(sys.excepthook, "_llff_hook", False):
        sys.excepthook = _report_without_traceback(sys.excepthook)
    return LLFFDataError(" ".join(message.split()))


# ---- poses_bounds.npy ---------------------------------------------------------------------------
def load_poses_bounds(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``poses_bounds.npy``: LLFF 3x5 matrices (N, 3, 5) and bounds (N, 2), validated."""
    if not path.is_file():
        raise _error(f"poses_bounds.npy not found in {path.parent} (expected the LLFF layout)")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise _error(f"cannot read {path}: {err}") from None
    if array.ndim != 2 or array.shape[1] != 17:
        raise _error(
            f"{path} must be an N x 17 array (3x5 pose, near, far per image); found shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise _error(f"{path} has no rows")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise _error(f"{path} holds non-finite values")
    bounds = array[:, 15:17]
    if (bounds <= 0).any() or (bounds[:, 0] > bounds[:, 1]).any():
        raise _error(f"{path}: bounds must satisfy 0 < near <= far; found min {bounds.min():g}")
    return array[:, :15].reshape(-1, 3, 5), bounds


def llff_to_opengl(poses: np.ndarray) -> np.ndarray:
    """(N, 3, 5) LLFF matrices [down, right, back, centre, hwf] -> (N, 3, 4) [right, up, back, centre]."""
    return np.stack([poses[:, :, 1], -poses[:, :, 0], poses[:, :, 2], poses[:, :, 3]], axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def average_pose(c2w: np.ndarray) -> np.ndarray:
    """(3, 4) mean pose of (N, 3, 4) camera-to-worlds: mean centre, back axis = normalised sum of back
    axes, right axis orthogonal to it and to the summed up axes (as NeRF's ``poses_avg``)."""
    back = _unit(c2w[:, :, 2].sum(0))
    right = _unit(np.cross(c2w[:, :, 1].sum(0), back))
    up = _unit(np.cross(back, right))
    return np.stack([right, up, back, c2w[:, :, 3].mean(0)], axis=1)


def _homogeneous(m: np.ndarray) -> np.ndarray:
    out = np.zeros((*m.shape[:-2], 4, 4))
    out[..., :3, :] = m
    out[..., 3, 3] = 1.0
    return out


def recenter(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Express (N, 3, 4) poses in the frame of their average pose; returns (poses, world transform 3x4)."""
    to_avg = np.linalg.inv(_homogeneous(average_pose(c2w)))
    return (to_avg @ _homogeneous(c2w))[:, :3], to_avg[:3]


# ---- images -------------------------------------------------------------------------------------
def list_images(folder: Path) -> list[Path]:
    """Image files of `folder`, sorted by name (LLFF's row order)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file; LLFFDataError when it cannot be read."""
    try:
        with Image.open(path) as image:
            size = image.size
            image.verify()
    except Exception as err:  # PIL raises many types for broken files
        raise _error(f"cannot read image {path}: {type(err).__name__}: {err}") from None
    return size


def _cache_folder(data: Path, sources: list[Path], factor: int) -> Path:
    """Per-data cache folder for downscaled images, keyed by the source files (path, size, mtime)."""
    key = hashlib.sha1(str(data.resolve()).encode())
    for p in sources:
        st = p.stat()
        key.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nerfinternals" / "llff"
    return root / key.hexdigest()[:16] / f"images_{factor}"


def _write_downscaled(sources: list[Path], target: Path, factor: int) -> None:
    """Box-filter each source image by `factor` into `target` (PNG), atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        for src in sources:
            with Image.open(src) as image:
                rgb = image.convert("RGBA" if "A" in image.getbands() else "RGB")
                small = rgb.resize((image.width // factor, image.height // factor), Image.Resampling.BOX)
            small.save(tmp / f"{src.stem}.png")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def downscaled_images(data: Path, sources: list[Path], factor: int) -> list[Path]:
    """``images_<factor>/`` made from `sources` (full-resolution images): in `data` when writable,
    else in a per-user cache folder (reused while the sources are unchanged)."""
    cache = _cache_folder(data, sources, factor)
    if cache.is_dir() and len(list_images(cache)) == len(sources):
        return list_images(cache)
    errors = []
    for target in (data / f"images_{factor}", cache):
        shutil.rmtree(cache, ignore_errors=True)  # an incomplete cache entry
        try:
            _write_downscaled(sources, target, factor)
        except OSError as err:
            errors.append(f"{target}: {err.strerror or err}")
            continue
        CONSOLE.print(f"[llff-data] wrote {len(sources)} images downscaled by {factor} to {target}")
        return list_images(target)
    raise _error(f"cannot write downscaled images for {data} ({'; '.join(errors)})")


# ---- the dataparser -----------------------------------------------------------------------------
@dataclass
class LLFFDataParserConfig(DataParserConfig):
    """LLFF forward-facing captures (poses_bounds.npy + images/), with the original NeRF's conventions."""

    _target: type = field(default_factory=lambda: LLFFDataParser)
    data: Path = Path("data/nerf_llff_data/fern")
    """Scene folder holding poses_bounds.npy and images/ (and optionally images_<d>/)."""
    downscale_factor: int = 1
    """Use images_<d>/ (d = this factor; made from images/ when missing). The image size in poses_bounds.npy must be divisible by it."""
    scale_factor: float | None = 0.75
    """NeRF's bd_factor: scale positions and bounds by 1 / (smallest bound x scale_factor), so the nearest content lies at 1 / scale_factor. None: no scaling."""
    recenter: bool = True
    """Express the poses relative to their average pose (NeRF's recenter_poses)."""
    eval_mode: Literal["interval", "fraction", "all"] = "interval"
    """interval: every eval_interval-th image is held out (LLFF convention); fraction: equally spaced train images, train_split_fraction of them (the authors' 90/10 split); all: every image in both."""
    eval_interval: int = 8
    """Hold out images 0, k, 2k, ... (eval_mode interval)."""
    train_split_fraction: float = 0.9
    """Fraction of the images used for training (eval_mode fraction)."""


class LLFFDataParser(DataParser):
    """Reads LLFF scenes; see the module docstring for the conventions."""

    config: LLFFDataParserConfig

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        c = self.config
        data = Path(c.data)
        factor = c.downscale_factor
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise _error(f"downscale_factor must be a positive integer, got {factor!r}")
        if c.scale_factor is not None and not (math.isfinite(c.scale_factor) and c.scale_factor > 0):
            raise _error(f"scale_factor must be a positive number or None, got {c.scale_factor!r}")
        if not data.is_dir():
            raise _error(f"LLFF data folder not found: {data}")
        llff, bounds = load_poses_bounds(data / "poses_bounds.npy")
        num = len(llff)
        hwf = llff[:, :, 4]
        if not np.allclose(hwf[:, :2], hwf[0, :2]):
            raise _error(f"{data / 'poses_bounds.npy'}: the rows disagree on the image size (H, W)")
        height0, width0 = (int(round(v)) for v in hwf[0, :2])
        if min(height0, width0) < 1 or not np.allclose(hwf[0, :2], (height0, width0)):
            raise _error(f"{data / 'poses_bounds.npy'}: image size (H, W) = {tuple(hwf[0, :2])} is not valid")
        if width0 % factor or height0 % factor:
            raise _error(
                f"downscale factor {factor} does not divide the image size {width0}x{height0} "
                f"(W x H, from poses_bounds.npy): expected both divisible by {factor}"
            )
        width, height = width0 // factor, height0 // factor

        self._size = (width0, height0)
        files = self._image_files(data, factor, num)
        for path in files:
            self._check_size(path, image_size(path), factor)

        c2w = llff_to_opengl(llff)
        scale = 1.0 if c.scale_factor is None else 1.0 / (bounds.min() * c.scale_factor)
        c2w[:, :, 3] *= scale
        bounds = bounds * scale
        transform = np.eye(4)[:3]
        if c.recenter:
            c2w, transform = recenter(c2w)
        # nerfstudio's convention: poses = scale * (transform @ original); ours scaled first.
        transform = transform.copy()
        transform[:, 3] /= scale

        indices = self._split_indices(files, split)
        focal = hwf[:, 2] / factor
        idx = torch.as_tensor(indices, dtype=torch.long)
        cameras = Cameras(
            camera_to_worlds=torch.as_tensor(c2w, dtype=torch.float32)[idx],
            fx=torch.as_tensor(focal, dtype=torch.float32)[idx, None],
            fy=torch.as_tensor(focal, dtype=torch.float32)[idx, None],
            cx=width / 2.0,
            cy=height / 2.0,
            width=width,
            height=height,
            camera_type=CameraType.PERSPECTIVE,
        )
        near, far = NEAR_MARGIN * float(bounds.min()), float(bounds.max())
        radius = far + float(np.abs(c2w[:, :, 3]).max())
        return DataparserOutputs(
            image_filenames=[files[i] for i in indices],
            cameras=cameras,
            scene_box=SceneBox(aabb=torch.tensor([[-radius] * 3, [radius] * 3], dtype=torch.float32)),
            metadata={
                "near_plane": near,
                "far_plane": far,
                "ndc_width": float(width),
                "ndc_height": float(height),
                "ndc_focal": float(focal[0]),
            },
            dataparser_transform=torch.as_tensor(transform, dtype=torch.float32),
            dataparser_scale=float(scale),
        )

    def _image_files(self, data: Path, factor: int, num_rows: int) -> list[Path]:
        """The images to use: images_<factor>/ (made from images/ if missing), one per pose row."""
        full_dir = data / "images"
        folder = data / f"images_{factor}" if factor > 1 else full_dir
        if folder.is_dir():
            files = list_images(folder)
        else:
            if not full_dir.is_dir():
                raise _error(f"no images/ folder in {data} (expected the LLFF layout)")
            sources = list_images(full_dir)
            if len(sources) != num_rows:
                raise _error(
                    f"poses_bounds.npy has {num_rows} rows but {full_dir} holds {len(sources)} images"
                )
            for path in sources:
                self._check_size(path, image_size(path), factor=1)
            files = downscaled_images(data, sources, factor)
        if len(files) != num_rows:
            raise _error(f"poses_bounds.npy has {num_rows} rows but {folder} holds {len(files)} images")
        return files

    def _check_size(self, path: Path, found: tuple[int, int], factor: int) -> None:
        width0, height0 = self._size
        expected = (width0 // factor, height0 // factor)
        if found != expected:
            source = f"{width0}x{height0} in poses_bounds.npy" + (f" / {factor}" if factor > 1 else "")
            raise _error(
                f"image {path} is {found[0]}x{found[1]}, expected {expected[0]}x{expected[1]} ({source})"
            )

    def _split_indices(self, files: list[Path], split: str) -> np.ndarray:
        c = self.config
        if c.eval_mode == "interval":
            if c.eval_interval < 1:
                raise _error(f"eval_interval must be at least 1, got {c.eval_interval}")
            i_train, i_eval = get_train_eval_split_interval(files, c.eval_interval)
        elif c.eval_mode == "fraction":
            if not 0.0 < c.train_split_fraction <= 1.0:
                raise _error(f"train_split_fraction must be in (0, 1], got {c.train_split_fraction}")
            i_train, i_eval = get_train_eval_split_fraction(files, c.train_split_fraction)
        elif c.eval_mode == "all":
            i_train, i_eval = get_train_eval_split_all(files)
        else:
            raise _error(f"unknown eval_mode {c.eval_mode!r}: choose interval, fraction or all")
        indices = i_train if split == "train" else i_eval
        if len(indices) == 0:
            raise _error(
                f"the {split} split of {c.data} is empty ({len(files)} images, eval_mode {c.eval_mode})"
            )
        return np.asarray(indices)


llff_data = DataParserSpecification(
    config=LLFFDataParserConfig(),
    description="LLFF forward-facing captures (poses_bounds.npy), NeRF's recentring and bd_factor scaling.",
)
