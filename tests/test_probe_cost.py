"""``benchmarks.probe_cost`` probes an image in chunks of ``eval_num_rays_per_chunk`` rays, like the renders."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import probe_cost
from nerfinternals.loading import load_pipeline
from tests.runs import REPO

RUN = Path("outputs/demo/spheres/activation-nerf/run/config.yml")  # relative to the repository root
CHUNK = 100

pytestmark = pytest.mark.skipif(not (REPO / RUN).is_file(), reason="no shipped activation-nerf run")


def test_probe_stages_run_chunk_by_chunk_over_the_whole_image(monkeypatch, tmp_path):
    from nerfinternals.demo import DEMO_SCENE, ensure_scene

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ensure_scene(Path(DEMO_SCENE))
    rays_per_call: list[int] = []
    points_per_mlp_call: list[int] = []

    def load_with_small_chunks(*args, **kwargs):
        loaded = load_pipeline(*args, **kwargs)
        model = loaded[1].model
        model.config.eval_num_rays_per_chunk = CHUNK
        probe_samples = model.probe_samples

        def recorded(rays, n):
            rays_per_call.append(len(rays))
            return probe_samples(rays, n)

        model.probe_samples = recorded
        model.probe_mlp.layers[0].register_forward_hook(
            lambda module, inputs, output: points_per_mlp_call.append(inputs[0].shape[:-1].numel())
        )
        return loaded

    monkeypatch.setattr(probe_cost, "load_pipeline", load_with_small_chunks)
    times = probe_cost.measure(probe_cost.ProbeCost(load_config=RUN, rescale=0.5, repeats=1, device="cpu"))
    # a 48 x 48 demo camera at half resolution: 576 rays = 5 chunks of 100 and one of 76, each sampled
    # twice (warm-up and one timed run)
    assert rays_per_call == [100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 76, 76]
    assert max(points_per_mlp_call) <= CHUNK * 32  # 32 probe (= coarse) samples per ray
    assert "uniform samples (32 per ray)" in times and "stock render of the image" in times
    assert all(math.isfinite(t) for t in times.values())
