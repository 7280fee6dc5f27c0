#!/usr/bin/env python
"""Strip a run's checkpoints to what evaluation needs (step + pipeline weights), in place.

Optimizer, scheduler and gradient-scaler state are dropped, and so are the LPIPS weights (our
models rebuild them); the file stays loadable by ``nerfinternals.loading.load_pipeline``, eval.py
and nerfstudio's ``eval_setup``. Only for runs you will not resume training from.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro


@dataclass
class Strip:
    """Strip optimizer state from the checkpoints of a run (in place, atomically)."""

    run_dir: Path
    """Run folder holding config.yml and nerfstudio_models/."""


def strip_checkpoint(path: Path) -> tuple[int, int]:
    """Rewrite ``path`` with only ``step`` and the non-LPIPS pipeline weights; returns (bytes before, after)."""
    before = path.stat().st_size
    loaded = torch.load(path, map_location="cpu", weights_only=False)  # our own run: trusted
    pipeline = {k: v for k, v in loaded["pipeline"].items() if ".lpips." not in k}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"step": loaded["step"], "pipeline": pipeline}, tmp)
    os.replace(tmp, path)
    return before, path.stat().st_size


def main(cfg: Strip) -> None:
    ckpts = sorted((cfg.run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    if not ckpts:
        print(f"error: no checkpoint (step-*.ckpt) in {cfg.run_dir / 'nerfstudio_models'}", file=sys.stderr)
        sys.exit(2)
    for ckpt in ckpts:
        before, after = strip_checkpoint(ckpt)
        print(f"{ckpt}: {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB")


if __name__ == "__main__":
    main(tyro.cli(Strip))
