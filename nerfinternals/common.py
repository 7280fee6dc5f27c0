"""Helpers shared by the command-line tools (``eval.py``, ``visualize.py``).

Atomic output files, the output-folder rules (next to the run, never inside the checkpoint folder,
a non-empty folder only with ``--overwrite``), the progress bar, synchronised timing, and the
"one ``error:`` line, exit code 2" handling of bad input.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nerfinternals.loading import InputError
from nerfinternals.utils import synchronize

T = TypeVar("T")


# ---- writing ------------------------------------------------------------------------------------
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask (reading it means setting it: briefly 077 then back, one thread at a time)."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same folder, then rename: never a half-written file.

    The file gets the mode a plain ``open(path, "w")`` gives (0644 under umask 022), not mkstemp's 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


def write_png(path: Path, image: torch.Tensor) -> None:
    """An (H, W, 3) or (H, W, 1) image in [0, 1] (or a bool mask) as an 8-bit PNG."""
    from PIL import Image

    array = (image.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    atomic_write(path, lambda p: Image.fromarray(array).save(p, format="PNG"))


def mean_or_none(values: list) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def finite_or_none(value: float | None) -> float | None:
    """JSON has no infinity or NaN: such values are written as null."""
    return None if value is None or not math.isfinite(value) else value


# ---- output folders -----------------------------------------------------------------------------
def output_root(load_config: Path, output_dir: str) -> Path:
    """``output_dir`` relative to the run folder (where config.yml is), or as given when absolute."""
    out = Path(output_dir)
    return out if out.is_absolute() else Path(load_config).parent / out


def check_output(out: Path, ckpt: Path, overwrite: bool) -> None:
    """Refuse an output folder inside the checkpoint folder, or non-empty without ``overwrite``."""
    ckpt_dir = ckpt.parent.resolve()
    resolved = out.resolve()
    if resolved == ckpt_dir or ckpt_dir in resolved.parents:
        raise InputError(
            f"output folder {out} is inside the checkpoint folder {ckpt_dir}: choose another --output-dir"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"output folder {out} is not empty: pass --overwrite or choose another --output-dir")


# ---- progress and timing -----------------------------------------------------------------------
def progress_bar(console: Console) -> Progress:
    """A transient rich progress bar: description, bar, done/total, elapsed time."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def timed(device: torch.device, fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and its wall time in seconds, synchronised on CUDA."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def camera_rays(camera):
    """The (H, W) ray bundle of a one-camera ``Cameras`` (as nerfstudio's ``get_outputs_for_camera``)."""
    return camera.generate_rays(camera_indices=0, keep_shape=True)


def fct_names(indices) -> list[str]:
    """Transform names of ``--fct`` indices (0 = std, 1 = std_half, 2 = std_half_sq); InputError for others."""
    from nerfinternals.internals import FCT_NAMES

    bad = [f for f in indices if not 0 <= f < len(FCT_NAMES)]
    if bad:
        names = ", ".join(f"{i} = {n}" for i, n in enumerate(FCT_NAMES))
        raise InputError(f"--fct {bad[0]} is out of range: choose from 0..{len(FCT_NAMES) - 1} ({names})")
    return [FCT_NAMES[f] for f in indices]


def check_rescale(factor: float) -> None:
    if not 0 < factor <= 1:
        raise InputError(f"--rescale must be in (0, 1], got {factor}")


SSIM_MIN_SIDE = 6
"""The smallest image side SSIM takes: torchmetrics reflect-pads each side by 5 px (half its 11 px
Gaussian window), which needs a side longer than the pad."""


def rendered_side(side: int, rescale: float) -> int:
    """An image side at ``rescale``, rounded as nerfstudio's ``Cameras.rescale_output_resolution`` does."""
    return int(side * rescale) if rescale != 1.0 else side


def check_render_size(height: int, width: int, rescale: float, what: str = "the smallest eval image") -> None:
    """InputError when an image of ``height`` x ``width`` renders too small at ``rescale`` for SSIM."""
    h, w = rendered_side(height, rescale), rendered_side(width, rescale)
    if min(h, w) < SSIM_MIN_SIDE:
        need = SSIM_MIN_SIDE / min(height, width)
        hint = f"--rescale {math.ceil(need * 1000) / 1000:g} or more" if need <= 1 else "larger images"
        raise InputError(
            f"--rescale {rescale:g} renders {what} ({width} x {height} px) at {w} x {h} px: SSIM needs at "
            f"least {SSIM_MIN_SIDE} px a side ({hint})"
        )


def resize_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """An (H, W, C) image resized to (height, width): each output pixel the mean of the input area it covers."""
    if tuple(image.shape[:2]) == (height, width):
        return image
    x = image.permute(2, 0, 1)[None].float()
    return torch.nn.functional.interpolate(x, size=(height, width), mode="area")[0].permute(1, 2, 0)


def eval_views(model, loader, max_images: int | None = None, rescale: float = 1.0):
    """(image index, (H, W) ray bundle, (H, W, 3) target on the model's device) of the first eval images.

    With ``rescale`` < 1 the cameras render at that fraction of the resolution (nerfstudio's
    ``rescale_output_resolution``) and the target is the ground truth area-averaged to the same size.
    """
    for i, (camera, batch) in enumerate(loader):
        if max_images is not None and i >= max_images:
            break
        if rescale != 1.0:
            camera = camera[:]  # a copy: the loader's camera stays as it is
            camera.rescale_output_resolution(rescale)
        bundle = camera_rays(camera)
        target = model.renderer_rgb.blend_background(batch["image"].to(model.device))[..., :3]
        yield int(batch["image_idx"]), bundle, resize_image(target, *bundle.shape)


def rgb_output(outputs: dict) -> torch.Tensor:
    """The final RGB of a stock output dict (``rgb_fine`` for NeRF / Mip-NeRF, ``rgb`` for nerfacto)."""
    return outputs["rgb_fine"] if "rgb_fine" in outputs else outputs["rgb"]


# ---- command line ------------------------------------------------------------------------------
def _tyro_message(text: str) -> str:
    """The sentences of tyro's parse error (unknown option or sub-command, invalid choice, ...).

    tyro draws a box (``│`` borders, the title in the top border) on a terminal-capable stream and
    plain text otherwise (the title as the first section); sections are separated by rules.
    """
    boxed = "│" in text
    sections: list[list[str]] = [[]]
    for line in text.splitlines():
        inner = line.strip()
        if boxed:
            if not inner.startswith("│"):
                continue
            inner = inner.strip("│").strip()
        if inner and set(inner) <= {"─", "-"}:
            sections.append([])
        elif inner:
            sections[-1].append(inner)
    sections = [s for s in sections if s]
    if not boxed and len(sections) > 1:
        sections = sections[1:]  # the title
    parts = [" ".join(s) for s in sections if not s[0].startswith("For full helptext")]
    return "; ".join(parts) or "invalid command line (run with -h for the flags)"


def parse_cli(config_type: object) -> object:
    """``tyro.cli(config_type)``; a parse error is one ``error:`` line and exit code 2 (not tyro's box)."""
    import tyro

    tyro.extras.set_accent_color("bright_yellow")
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            cfg = tyro.cli(config_type)
    except SystemExit as exit_:
        if exit_.code in (0, None):  # -h
            raise
        print(f"error: {_tyro_message(captured.getvalue())}", file=sys.stderr)
        sys.exit(2)
    sys.stderr.write(captured.getvalue())
    return cfg


def run_cli(config_type: object, main: Callable[[object], object]) -> None:
    """Parse ``config_type`` with tyro and run ``main``; bad input -> one ``error:`` line, exit code 2."""
    cfg = parse_cli(config_type)
    try:
        main(cfg)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
