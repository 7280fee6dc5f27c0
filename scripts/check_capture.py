#!/usr/bin/env python
"""Check a capture folder before training on it (used by scripts/train_real.sh); quick, numpy only.

    check_capture.py llff DATA FACTOR        poses_bounds.npy (N x 17) and N images in images_<FACTOR>/
                                             (or in images/, which llff-data downscales)
    check_capture.py nerfstudio DATA FACTOR  transforms.json with frames, each frame's image in
                                             images_<FACTOR>/ (images/ for factor 1)

Prints nothing and exits 0 when the folder looks trainable; else one ``error: ...`` line, exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def _images(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES] if folder.is_dir() else []


def check_llff(data: Path, factor: int) -> str | None:
    poses = data / "poses_bounds.npy"
    if not poses.is_file():
        return f"no LLFF capture at {data} (poses_bounds.npy missing)"
    try:
        array = np.load(poses, allow_pickle=False)
    except (OSError, ValueError) as err:
        return f"cannot read {poses}: {err}"
    if array.ndim != 2 or array.shape[1] != 17 or len(array) == 0:
        return f"{poses} must hold an N x 17 array, found shape {array.shape}"
    folder = data / f"images_{factor}"
    if not folder.is_dir():
        folder = data / "images"
    if not folder.is_dir():
        return f"no images_{factor}/ (or images/ to make it from) in {data}"
    found = len(_images(folder))
    if found != len(array):
        return f"{folder} holds {found} images, poses_bounds.npy {len(array)} rows"
    return None


def check_nerfstudio(data: Path, factor: int) -> str | None:
    transforms = data / "transforms.json"
    if not transforms.is_file():
        return f"no nerfstudio capture at {data} (transforms.json missing)"
    try:
        frames = json.loads(transforms.read_text())["frames"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"cannot read the frames of {transforms}: {type(err).__name__}: {err}"
    if not isinstance(frames, list) or not frames:
        return f"{transforms} lists no frames"
    folder = data / ("images" if factor == 1 else f"images_{factor}")
    try:
        missing = [f["file_path"] for f in frames if not (folder / Path(f["file_path"]).name).is_file()]
    except (KeyError, TypeError) as err:
        return f"a frame of {transforms} has no file_path: {type(err).__name__}: {err}"
    if missing:
        return f"{len(missing)} of {len(frames)} frames have no image in {folder} (first: {missing[0]})"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("llff", "nerfstudio") or not argv[2].isdigit():
        print("usage: check_capture.py {llff,nerfstudio} DATA FACTOR", file=sys.stderr)
        return 2
    check = check_llff if argv[0] == "llff" else check_nerfstudio
    error = check(Path(argv[1]), int(argv[2]))
    if error:
        print("error: " + " ".join(error.split()), file=sys.stderr)  # one line
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
