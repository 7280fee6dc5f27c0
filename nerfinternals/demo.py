"""``make demo``: the main job on an embedded default, on CPU in a few minutes.

1. regenerate the ``spheres`` scene (48 x 48 px) into ``data/demo-spheres`` if it is missing
   (deterministic: the shipped runs were trained on exactly these images);
2. load a shipped pre-trained run from ``outputs/demo/spheres/<method>/run`` (trained by
   ``scripts/train_demo_models.sh``; if it is missing, that script trains it first);
3. evaluate it with eval.py: the stock pipeline (run-normal) and the activation-informed rendering
   at one layer / fct, printing the summary table and where the images are.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from nerfinternals.data.synthetic import generate_blender_scene
from nerfinternals.eval import ActivationDerivedDensity, evaluate
from nerfinternals.loading import InputError

DEMO_SCENE = "data/demo-spheres"
DEMO_SCENE_ARGS = dict(scene="spheres", width=48, height=48, num_train=40, num_val=4, num_test=4, seed=0)
REPO = Path(__file__).resolve().parents[1]


def ensure_scene(path: Path = Path(DEMO_SCENE)) -> Path:
    """Generate the demo scene at ``path`` unless it is there already."""
    if not (path / "transforms_train.json").is_file():
        print(f"generating the demo scene into {path}")
        generate_blender_scene(path, **DEMO_SCENE_ARGS)
    return path


def run_config(method: str) -> Path:
    return Path("outputs/demo/spheres") / method / "run" / "config.yml"


@dataclass
class Demo:
    """Evaluate a shipped pre-trained model with activation-informed rendering against stock."""

    method: Literal["activation-nerf", "activation-mipnerf", "activation-nerfacto"] = "activation-nerf"
    """Which shipped run to evaluate."""
    layer: int = 2
    """Probed layer (0-based); the default is the best layer / fct of benchmarks/results for activation-nerf."""
    fct: int = 2
    """Transform: 0 std, 1 std_half, 2 std_half_sq."""
    output_dir: str = "eval-demo"
    """Output folder, relative to the run folder (replaced on every demo run)."""


def main(demo: Demo) -> None:
    ensure_scene()
    config = run_config(demo.method)
    if not list(config.parent.glob("nerfstudio_models/step-*.ckpt")):
        print(f"no shipped checkpoint for {demo.method}: training it with scripts/train_demo_models.sh")
        subprocess.run(["bash", str(REPO / "scripts" / "train_demo_models.sh"), demo.method], check=True)
    else:
        print(f"using the shipped checkpoint of {config.parent}")
    evaluate(
        ActivationDerivedDensity(
            load_config=config,
            layer=(demo.layer,),
            fct=(demo.fct,),
            output_dir=demo.output_dir,
            overwrite=True,
            run_normal=True,
        )
    )
    first = config.parent / demo.output_dir / "000"
    print(f"first test image: {first}/coarse-to-fine.png (stock) and {first}/layer_*/ours.png (ours)")


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
