"""Reference renders of every sampler and option on the shipped demo runs (test data).

``tests/data/reference_renders.npz`` holds, per shipped run and case, the outputs of ``render_sampled`` on
the run's first test view at a quarter of its resolution (12 x 12 pixels), as rendered by the code of the
commit that stored them. ``tests/test_estimators.py`` renders every case again and compares: a change of
how the render loop is organised must not change a pixel. Regenerate (only when a render is meant to
change, and say why in the commit) with::

    python -m tests.reference_renders
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "reference_renders.npz"
RUNS = {
    kind: f"outputs/demo/spheres/activation-{kind}/run/config.yml" for kind in ("nerf", "mipnerf", "nerfacto")
}
RESCALE = 0.25
OUTPUTS = ("rgb", "accumulation", "depth", "gate_mask", "activation_map")

CASES: dict[str, dict] = {
    "stock": dict(sampler="stock"),
    "stock-k16-skip": dict(sampler="stock", fine_samples=16, skip_empty=True),
    "activation": dict(sampler="activation", layer=1, fct="std_half"),
    "activation-l0-std-k16": dict(sampler="activation", layer=0, fct="std", fine_samples=16),
    "activation-upsample": dict(sampler="activation", layer=1, fct="std_half_sq", upsample=True),
    "activation-gate": dict(sampler="activation", layer=1, fct="std_half", gate=True),
    "activation-gate-upsample": dict(sampler="activation", layer=2, fct="std_half", gate=True, upsample=True),
    "activation-nprobe": dict(sampler="activation", layer=1, fct="std_half", n_probe=6),
    "activation-inbox": dict(sampler="activation", layer=1, fct="std_half", in_box=True),
    "activation-skip": dict(sampler="activation", layer=1, fct="std_half", skip_empty=True),
    "grid": dict(sampler="grid", grid_resolution=16),
    "grid-k16-skip": dict(sampler="grid", grid_resolution=16, fine_samples=16, skip_empty=True),
    "grid-inbox-skip": dict(sampler="grid", grid_resolution=16, in_box=True, skip_empty=True),
    "hybrid": dict(sampler="hybrid", layer=1, fct="std_half", grid_resolution=16),
    "hybrid-skip": dict(sampler="hybrid", layer=1, fct="std_half", grid_resolution=16, skip_empty=True),
    "hybrid-skip-upsample-k16": dict(
        sampler="hybrid",
        layer=1,
        fct="std_half",
        grid_resolution=16,
        skip_empty=True,
        upsample=True,
        fine_samples=16,
    ),
}


def load_view(kind: str):
    """The shipped run of ``kind`` (model on the CPU) and its first test view's (H, W) bundle at RESCALE."""
    from nerfinternals.common import eval_views
    from nerfinternals.demo import DEMO_SCENE, ensure_scene
    from nerfinternals.loading import load_pipeline

    old = os.getcwd()
    os.chdir(REPO)
    try:
        ensure_scene(REPO / DEMO_SCENE)
        pipeline = load_pipeline(Path(RUNS[kind]), device="cpu")[1]
    finally:
        os.chdir(old)
    ((_, bundle, _),) = eval_views(
        pipeline.model, pipeline.datamanager.fixed_indices_eval_dataloader, 1, RESCALE
    )
    return pipeline.model, bundle


def render_case(model, bundle, case: str) -> dict[str, np.ndarray]:
    """The outputs of one case as float32 arrays (H, W, C)."""
    outputs, _ = model.render_sampled(bundle, **CASES[case])
    return {name: outputs[name].float().cpu().numpy() for name in OUTPUTS if name in outputs}


def main() -> None:
    arrays = {}
    for kind in RUNS:
        model, bundle = load_view(kind)
        for case in CASES:
            for name, value in render_case(model, bundle, case).items():
                arrays[f"{kind}/{case}/{name}"] = value
    DATA.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(DATA, **arrays)
    print(f"{len(arrays)} arrays -> {DATA.relative_to(REPO)} ({DATA.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
