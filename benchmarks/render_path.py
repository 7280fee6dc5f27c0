#!/usr/bin/env python
"""Time per frame of a camera-path render, stock against activation-informed sampling, per precision.

The path is the one ``ns-render interpolate`` renders (nerfstudio's ``get_interpolated_camera_path``
through the run's eval cameras, ``--interpolation-steps`` frames per pair: 4 eval cameras and 10
steps give 30 frames). Every frame is rendered the way ``ns-render`` / ``ns-internals-render`` do,
through the model's ``get_outputs_for_camera`` with its inference setting, by the stock sampler and
by ours at each precision, all in one process on the same frames. Per configuration: seconds per
frame (mean after one warm-up frame, synchronised on CUDA), speed-up over stock fp32, PSNR of its
frames against the stock fp32 frames (the same camera; no ground truth exists between eval views),
and peak memory (CUDA max allocated; not measured on the CPU).

    python -m benchmarks.render_path --load-config outputs/demo/spheres/activation-nerf/run/config.yml
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from nerfstudio.cameras.camera_paths import get_interpolated_camera_path
from rich.console import Console
from rich.table import Table

from nerfinternals.common import atomic_write, fct_names, run_cli, timed, write_json
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.precision import PRECISIONS, Precision, check_precision
from nerfinternals.utils import machine_name

CONSOLE = Console(width=120)


@dataclass
class RenderPath:
    """Render an interpolated camera path with the stock sampler and ours, at each precision, and time it."""

    load_config: Path
    """config.yml of the run."""
    interpolation_steps: int = 10
    """Frames between consecutive eval cameras (as ns-render interpolate)."""
    sampler: Literal["activation", "grid", "hybrid"] = "activation"
    """The sampler of ours (see ns-internals-render --inference-sampler)."""
    fine_samples: int = 0
    """Ours with this final-pass budget (0: the model's own)."""
    skip_empty: bool = False
    """Ours skipping empty rays."""
    layer: int = 1
    """Probed layer of ours (0-based)."""
    fct: int = 1
    """Transform of ours: 0 = std, 1 = std_half, 2 = std_half_sq."""
    upsample: bool = False
    """Ours with --upsample."""
    probe_samples: int = 0
    """Ours with this many probe samples (0: as many as the replaced network)."""
    in_box: bool = False
    """Ours with the uniform samples inside the scene box."""
    precision: tuple[Precision, ...] | None = None
    """Precisions to run (default: every one the device supports: fp32, bf16, fp16, and tf32 on CUDA)."""
    output_dir: Path | None = None
    """Write render_path.json and render_path.md here (default: print only)."""
    device: str | None = None
    """Torch device (default: cuda if available, else cpu)."""


def frame_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a.clamp(0, 1) - b.clamp(0, 1)) ** 2))
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def measure(cfg: RenderPath) -> dict:
    (fct,) = fct_names([cfg.fct])
    if cfg.interpolation_steps < 1:
        raise InputError(f"--interpolation-steps must be at least 1, got {cfg.interpolation_steps}")
    config, pipeline, ckpt, step = load_pipeline(cfg.load_config, device=cfg.device)
    model = pipeline.model
    device = model.device
    precisions = cfg.precision or tuple(p for p in PRECISIONS if p != "tf32" or device.type == "cuda")
    precisions = ("fp32", *(p for p in precisions if p != "fp32"))  # stock fp32 first: the reference
    try:
        for p in precisions:
            check_precision(p, device)
    except ValueError as err:
        raise InputError(str(err)) from None
    path = get_interpolated_camera_path(
        pipeline.datamanager.eval_dataset.cameras, steps=cfg.interpolation_steps, order_poses=False
    ).to(device)
    frames = len(path)
    if frames < 2:
        raise InputError(f"the path has {frames} frame(s): the run needs at least 2 eval cameras")
    ours = {
        "inference_sampler": cfg.sampler,
        "fine_samples": cfg.fine_samples,
        "skip_empty": cfg.skip_empty,
        "probe_layer": cfg.layer,
        "probe_fct": fct,
        "probe_upsample": cfg.upsample,
        "probe_samples": cfg.probe_samples,
        "probe_in_box": cfg.in_box,
    }
    try:
        model.set_inference(**ours)
    except ValueError as err:
        raise InputError(str(err)) from None
    configs = [(sampler, p) for p in precisions for sampler in ("stock", "ours")]
    reference: list[torch.Tensor] = []
    rows = []
    with CONSOLE.status("") as status:
        for sampler, precision in configs:
            model.set_inference(
                precision=precision,
                **(
                    ours
                    if sampler == "ours"
                    else {"inference_sampler": "stock", "fine_samples": 0, "skip_empty": False}
                ),
            )
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times, psnrs = [], []
            model.get_outputs_for_camera(path[0:1])  # warm-up
            for i in range(frames):
                status.update(f"{sampler} {precision}: frame {i + 1}/{frames}")
                outputs, t = timed(device, lambda i=i: model.get_outputs_for_camera(path[i : i + 1]))
                rgb = outputs["rgb"].float()
                times.append(t)
                if (sampler, precision) == ("stock", "fp32"):
                    reference.append(rgb)
                psnrs.append(frame_psnr(rgb, reference[i]))
            rows.append(
                {
                    "sampler": sampler,
                    "precision": precision,
                    "s_per_frame": statistics.mean(times),
                    "s_per_frame_median": statistics.median(times),
                    "psnr_vs_stock_fp32": statistics.mean(p for p in psnrs if math.isfinite(p))
                    if not all(map(math.isinf, psnrs))
                    else None,
                    "identical_to_stock_fp32": all(map(math.isinf, psnrs)),
                    "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20
                    if device.type == "cuda"
                    else None,
                }
            )
    stock_fp32 = rows[0]["s_per_frame"]
    for row in rows:
        row["speedup_vs_stock_fp32"] = stock_fp32 / row["s_per_frame"]
    h, w = int(path.height[0]), int(path.width[0])
    return {
        "run": str(cfg.load_config),
        "method": config.method_name,
        "checkpoint": str(ckpt),
        "step": step,
        "device": machine_name(device) if device.type == "cuda" else f"{device} ({machine_name(device)})",
        "frames": frames,
        "frame_shape": [h, w],
        "ours": ours,
        "configs": rows,
    }


def markdown(result: dict) -> str:
    h, w = result["frame_shape"]
    o = result["ours"]
    lines = [
        f"{result['frames']} frames of {w}x{h} px, `interpolate` path of {result['method']} (step {result['step']}) "
        f"on {result['device']}; ours: {o['inference_sampler']} sampler, layer {o['probe_layer']}, {o['probe_fct']}"
        + (f", {o['fine_samples']} fine samples" if o["fine_samples"] else "")
        + (", empty rays skipped" if o["skip_empty"] else "")
        + (", upsample" if o["probe_upsample"] else "")
        + (f", {o['probe_samples']} probe samples" if o["probe_samples"] else "")
        + (", in box" if o["probe_in_box"] else ""),
        "",
        "| sampler | precision | s / frame | speed-up vs stock fp32 | PSNR vs stock fp32 frames | peak mem [MB] |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["configs"]:
        psnr = "identical" if r["identical_to_stock_fp32"] else f"{r['psnr_vs_stock_fp32']:.2f} dB"
        mem = "—" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.0f}"
        lines.append(
            f"| {r['sampler']} | {r['precision']} | {r['s_per_frame']:.3f} | {r['speedup_vs_stock_fp32']:.2f}x | {psnr} | {mem} |"
        )
    return "\n".join(lines) + "\n"


def run(cfg: RenderPath) -> dict:
    result = measure(cfg)
    table = Table(title=f"{result['method']} · {result['frames']} frames · {result['device']}")
    for col in ("sampler", "precision", "s / frame", "speed-up", "PSNR vs stock fp32", "peak mem [MB]"):
        table.add_column(col, justify="left" if col in ("sampler", "precision") else "right")
    for r in result["configs"]:
        table.add_row(
            r["sampler"],
            r["precision"],
            f"{r['s_per_frame']:.3f}",
            f"{r['speedup_vs_stock_fp32']:.2f}x",
            "identical" if r["identical_to_stock_fp32"] else f"{r['psnr_vs_stock_fp32']:.2f} dB",
            "—" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.0f}",
        )
    CONSOLE.print(table)
    if cfg.output_dir is not None:
        write_json(cfg.output_dir / "render_path.json", result)
        atomic_write(cfg.output_dir / "render_path.md", lambda p: p.write_text(markdown(result)))
        CONSOLE.print(f"results in {cfg.output_dir}")
    return result


def entrypoint() -> None:
    run_cli(RenderPath, run)


if __name__ == "__main__":
    entrypoint()
