"""``make demo``: the main job on an embedded default, on CPU in a few minutes.

1. generate the ``spheres`` scene (48 x 48 px) into ``data/demo-spheres`` if it is missing;
2. train a small activation-nerf on it with ``ns-train`` (CPU) into ``outputs/demo`` if no
   checkpoint is there yet;
3. run ``eval.py`` on its test images with run-normal and one layer/fct, printing the summary table.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro

from nerfinternals.data.synthetic import generate_blender_scene
from nerfinternals.eval import ActivationDerivedDensity, evaluate
from nerfinternals.loading import InputError

# A reduced NeRF (4 x 64 position MLP, 32 + 64 samples) that learns the scene in minutes on a CPU.
DEMO_MODEL_FLAGS = [
    "--pipeline.model.base-mlp-num-layers", "4",
    "--pipeline.model.base-mlp-layer-width", "64",
    "--pipeline.model.head-mlp-layer-width", "32",
    "--pipeline.model.skip-connections", "2",
    "--pipeline.model.num-coarse-samples", "32",
    "--pipeline.model.num-importance-samples", "64",
    "--pipeline.model.eval-num-rays-per-chunk", "2304",
    "--pipeline.datamanager.train-num-rays-per-batch", "256",
]  # fmt: skip


@dataclass
class Demo:
    """Generate a scene, train a small activation-nerf on CPU if needed, and evaluate it."""

    data: Path = Path("data/demo-spheres")
    """Scene folder (generated if missing)."""
    outputs: Path = Path("outputs/demo")
    """Training output folder (a run is trained here if none exists)."""
    iterations: int = 1500
    """Training iterations when a run has to be trained."""
    layer: int = 1
    """Probed layer for the evaluation."""
    fct: int = 1
    """Transform for the evaluation (0 std, 1 std_half, 2 std_half_sq)."""


def _config_path(outputs: Path) -> Path:
    return outputs / "demo" / "activation-nerf" / "run" / "config.yml"


def main(demo: Demo) -> None:
    if not (demo.data / "transforms_train.json").is_file():
        print(f"generating the scene into {demo.data}")
        generate_blender_scene(demo.data, "spheres", width=48, height=48, num_train=40, num_val=4, num_test=4)
    config = _config_path(demo.outputs)
    if not list(config.parent.glob("nerfstudio_models/step-*.ckpt")):
        print(f"training activation-nerf for {demo.iterations} iterations on CPU into {demo.outputs}")
        cmd = [
            str(Path(sys.executable).parent / "ns-train"), "activation-nerf",
            "--machine.device-type", "cpu",
            "--vis", "tensorboard",
            "--output-dir", str(demo.outputs),
            "--experiment-name", "demo",
            "--timestamp", "run",
            "--max-num-iterations", str(demo.iterations),
            "--steps-per-save", str(demo.iterations),
            "--steps-per-eval-image", str(10 * demo.iterations),
            "--steps-per-eval-all-images", str(10 * demo.iterations),
            *DEMO_MODEL_FLAGS,
            "--data", str(demo.data),
        ]  # fmt: skip
        subprocess.run(cmd, check=True)
    evaluate(
        ActivationDerivedDensity(
            load_config=config, layer=(demo.layer,), fct=(demo.fct,), output_dir="eval-demo", overwrite=True
        )
    )


def entrypoint() -> None:
    try:
        main(tyro.cli(Demo))
    except (InputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except subprocess.CalledProcessError as err:
        print(f"error: training failed (exit code {err.returncode})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    entrypoint()
