"""Tiny training runs through the real ``ns-train`` entry point, shared by the test modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NS_TRAIN = str(Path(sys.executable).parent / "ns-train")
EVAL_SCRIPT = str(REPO / "nerfinternals" / "eval.py")

# Narrow/shallow MLPs, few samples, 64 rays a batch: seconds per run on a 2-core CPU.
TINY_FLAGS = {
    "activation-nerf": [
        "--pipeline.model.num-coarse-samples", "8",
        "--pipeline.model.num-importance-samples", "8",
        "--pipeline.model.base-mlp-num-layers", "4",
        "--pipeline.model.base-mlp-layer-width", "32",
        "--pipeline.model.head-mlp-layer-width", "16",
        "--pipeline.model.skip-connections", "2",
    ],
    "activation-mipnerf": [
        "--pipeline.model.num-coarse-samples", "8",
        "--pipeline.model.num-importance-samples", "8",
        "--pipeline.model.base-mlp-num-layers", "4",
        "--pipeline.model.base-mlp-layer-width", "32",
        "--pipeline.model.head-mlp-layer-width", "16",
        "--pipeline.model.skip-connections", "2",
    ],
    "activation-nerfacto": [
        "--pipeline.model.num-proposal-samples-per-ray", "16", "8",
        "--pipeline.model.num-nerf-samples-per-ray", "8",
        "--pipeline.model.proposal-mlp-layer-width", "32",
        "--pipeline.model.hidden-dim", "16",
        "--pipeline.model.hidden-dim-color", "16",
        "--pipeline.model.num-levels", "4",
        "--pipeline.model.log2-hashmap-size", "12",
    ],
    "vanilla-nerf": [
        "--pipeline.model.num-coarse-samples", "8",
        "--pipeline.model.num-importance-samples", "8",
    ],
    "nerfacto": [
        "--pipeline.model.implementation", "torch",
        "--pipeline.model.num-proposal-samples-per-ray", "16", "8",
        "--pipeline.model.num-nerf-samples-per-ray", "8",
        "--pipeline.model.hidden-dim", "16",
        "--pipeline.model.hidden-dim-color", "16",
        "--pipeline.model.num-levels", "4",
        "--pipeline.model.log2-hashmap-size", "12",
        "--pipeline.model.camera-optimizer.mode", "off",
    ],
}  # fmt: skip

# Methods whose default dataparser is not blender-data get it as a subcommand.
NEEDS_BLENDER_SUBCOMMAND = {"activation-nerfacto", "nerfacto"}


def train(method: str, data: Path, output: Path, torch_home: Path, iterations: int = 4) -> Path:
    """Train ``method`` for a few iterations on CPU; returns the run's config.yml."""
    cmd = [
        NS_TRAIN, method,
        "--machine.device-type", "cpu",
        "--vis", "tensorboard",
        "--output-dir", str(output),
        "--experiment-name", "tiny",
        "--timestamp", "run",
        "--max-num-iterations", str(iterations),
        "--steps-per-save", str(iterations),
        "--pipeline.datamanager.train-num-rays-per-batch", "64",
        "--pipeline.datamanager.eval-num-rays-per-batch", "64",
        "--pipeline.model.eval-num-rays-per-chunk", "256",
        *TINY_FLAGS[method],
    ]  # fmt: skip
    if method in NEEDS_BLENDER_SUBCOMMAND:
        cmd += ["blender-data", "--data", str(data)]
    else:
        cmd += ["--data", str(data)]
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=output, timeout=600)
    assert result.returncode == 0, (
        f"ns-train {method} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    config = output / "tiny" / method / "run" / "config.yml"
    assert config.is_file()
    return config


def run_eval(args: list[str], torch_home: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python nerfinternals/eval.py ARGS`` as a user runs it."""
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    return subprocess.run(
        [sys.executable, EVAL_SCRIPT, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )
