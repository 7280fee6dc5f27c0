"""Reduced-precision rendering: ``fp32`` (exact), ``tf32`` (CUDA matmuls), ``bf16`` / ``fp16`` (autocast).

``fp32`` changes nothing: renders are bit-identical to rendering without this module. ``tf32`` lets
CUDA run float32 matrix multiplies on tensor cores (``torch.set_float32_matmul_precision("high")``),
``bf16`` / ``fp16`` run the MLPs under ``torch.autocast`` (matrix multiplies in the low-precision
type; sampling, compositing and reductions stay in float32, as autocast's op lists define). Measured
on this project's CPU (x86_64 with AVX-512 BF16, 2 cores): bf16 is the fastest choice there, fp16 is
faster than fp32 but slower than bf16; TF32 does not exist on a CPU.

The matmul precision is a process-wide setting while the viewer renders from several threads: TF32
scopes share it through a reference count (the first to enter sets it, the last to leave restores it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Literal

import torch

Precision = Literal["fp32", "tf32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16")

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}

_MATMUL_LOCK = threading.Lock()
_matmul = {"users": 0, "value": None, "saved": None}


def check_precision(precision: str, device: torch.device | str) -> None:
    """Raise ``ValueError`` (one line) unless ``precision`` can run on ``device``."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "tf32" and device.type != "cuda":
        raise ValueError(
            f"--precision tf32 needs a CUDA device (TF32 is an NVIDIA tensor-core format); on {device.type} "
            "use fp32, bf16 or fp16"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("--precision bf16 is not supported by this CUDA device: use fp16, tf32 or fp32")


@contextlib.contextmanager
def _matmul_precision(value: str) -> Iterator[None]:
    """``torch.set_float32_matmul_precision(value)`` while any such block runs, in any thread.

    The first block to enter saves the process-wide setting and sets ``value``; the last to leave
    restores it, also when the block raises. Overlapping blocks must ask for the same value.
    """
    with _MATMUL_LOCK:
        if _matmul["users"] == 0:
            _matmul["saved"], _matmul["value"] = torch.get_float32_matmul_precision(), value
            torch.set_float32_matmul_precision(value)
        elif _matmul["value"] != value:
            raise ValueError(f"matmul precision {_matmul['value']!r} is in use, cannot set {value!r}")
        _matmul["users"] += 1
    try:
        yield
    finally:
        with _MATMUL_LOCK:
            _matmul["users"] -= 1
            if _matmul["users"] == 0:
                torch.set_float32_matmul_precision(_matmul["saved"])


@contextlib.contextmanager
def precision_scope(precision: str, device: torch.device | str) -> Iterator[None]:
    """Run the block at ``precision`` on ``device`` (see the module docstring); fp32 is a no-op."""
    device = torch.device(device)
    check_precision(precision, device)
    if precision == "fp32":
        yield
    elif precision == "tf32":
        with _matmul_precision("high"):
            yield
    else:
        with torch.autocast(device_type=device.type, dtype=_AUTOCAST[precision]):
            yield


def as_float32(outputs: dict) -> dict:
    """Floating-point outputs as float32 (autocast leaves some in bf16 / fp16); others as they are."""
    return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in outputs.items()}
