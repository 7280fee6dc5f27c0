"""Shared by the test modules: tiny training runs through the real ``ns-train`` entry point, hand-made rays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

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


def on_cpu(args: list[str]) -> list[str]:
    """CLI arguments pinned to the CPU (the runs here are tiny: a GPU would only add its start-up)."""
    return args if "--device" in args else [*args, "--device", "cpu"]


def run_eval(args: list[str], torch_home: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python nerfinternals/eval.py ARGS`` as a user runs it (on the CPU)."""
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    return subprocess.run(
        [sys.executable, EVAL_SCRIPT, *on_cpu(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def ray_samples(num_rays: int, num_samples: int = 8, near: float = 2.0, far: float = 6.0):
    """``num_rays`` rays along +z from the origin, each with ``num_samples`` equal bins over [near, far]."""
    from nerfstudio.cameras.rays import Frustums, RaySamples

    bins = torch.linspace(near, far, num_samples + 1)
    starts = bins[:-1].expand(num_rays, num_samples)[..., None]
    ends = bins[1:].expand(num_rays, num_samples)[..., None]
    return RaySamples(
        frustums=Frustums(
            origins=torch.zeros(num_rays, num_samples, 3),
            directions=torch.tensor([0.0, 0.0, 1.0]).expand(num_rays, num_samples, 3),
            starts=starts,
            ends=ends,
            pixel_area=torch.ones(num_rays, num_samples, 1),
        ),
        deltas=ends - starts,
    )


# ---- small models built in-process (no training) ---------------------------------------------------
_NERF = dict(
    num_coarse_samples=8,
    num_importance_samples=8,
    base_mlp_num_layers=4,
    base_mlp_layer_width=32,
    head_mlp_layer_width=16,
    skip_connections=(2,),
    collider_params={"near_plane": 2.0, "far_plane": 6.0},
    eval_num_rays_per_chunk=50,  # several chunks, the last one partial
)
_NERFACTO = dict(
    num_proposal_samples_per_ray=(16, 8),
    num_nerf_samples_per_ray=8,
    proposal_mlp_layer_width=32,
    hidden_dim=16,
    hidden_dim_color=16,
    num_levels=4,
    log2_hashmap_size=12,
    eval_num_rays_per_chunk=50,
)


def _model_configs():
    from nerfinternals.models import (
        ActivationMipNerfModelConfig,
        ActivationNerfactoModelConfig,
        ActivationNeRFModelConfig,
    )

    return {
        "nerf": lambda: ActivationNeRFModelConfig(**_NERF),
        "mipnerf": lambda: ActivationMipNerfModelConfig(**_NERF),
        "nerfacto": lambda: ActivationNerfactoModelConfig(**_NERFACTO),
        # how a stock nerfacto checkpoint is loaded: hash-grid proposal networks
        "nerfacto-stock": lambda: ActivationNerfactoModelConfig(proposal_field="hash", **_NERFACTO),
        # a bounded scene, as the paper's Blender runs: no scene contraction, near / far 2 / 6
        "nerfacto-bounded": lambda: ActivationNerfactoModelConfig(
            disable_scene_contraction=True, near_plane=2.0, far_plane=6.0, **_NERFACTO
        ),
    }


MODEL_CONFIGS = _model_configs()


def build_model(kind: str):
    """A freshly initialised model of ``kind`` (seeded) in eval mode, on the CPU, in a [-1.5, 1.5]^3 box."""
    from nerfstudio.data.scene_box import SceneBox

    torch.manual_seed(0)
    scene_box = SceneBox(aabb=torch.tensor([[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]]))
    return MODEL_CONFIGS[kind]().setup(scene_box=scene_box, num_train_data=2).eval()


def camera_bundle(width: int = 13, height: int = 9, z: float = 4.0):
    """Rays of a camera at (0, 0, z) looking at the origin (13 x 9: not square, not a chunk multiple)."""
    from nerfstudio.cameras.cameras import Cameras

    c2w = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, z]])
    camera = Cameras(
        camera_to_worlds=c2w[None], fx=20.0, fy=20.0, cx=width / 2, cy=height / 2, width=width, height=height
    )
    return camera.generate_rays(camera_indices=0, keep_shape=True)


def link_standin_alexnet(home: Path, standin_alexnet_file: Path) -> Path:
    """Make ``home`` a torch hub whose cached AlexNet weights file is the session's stand-in."""
    path = home / "hub" / "checkpoints" / standin_alexnet_file.name
    path.parent.mkdir(parents=True)
    path.symlink_to(standin_alexnet_file)
    return home
