"""On a CUDA machine: CUDA renders agree with CPU ones, reduced precision stays close to fp32, NerfAcc's grid runs.

Skipped without a GPU (every other test pins the CPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from nerfinternals.common import eval_views
from nerfinternals.loading import load_pipeline
from nerfinternals.metrics import image_metrics
from tests.runs import REPO

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SHIPPED = {
    m: f"outputs/demo/spheres/{m}/run/config.yml"
    for m in ("activation-nerf", "activation-mipnerf", "activation-nerfacto")
}
AGREE_DB = 40.0
"""CUDA and CPU renders of the same camera agree to more than this PSNR (fp32; kernels differ in rounding)."""
REDUCED_DB = {"tf32": 35.0, "bf16": 30.0, "fp16": 30.0}
"""A render at reduced precision is within this PSNR of the fp32 render of the same camera."""


@pytest.fixture(scope="module", autouse=True)
def at_repo_root(tmp_path_factory):
    from nerfinternals.demo import DEMO_SCENE, ensure_scene

    old = os.getcwd()
    os.chdir(REPO)
    os.environ.setdefault("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
    ensure_scene(REPO / DEMO_SCENE)
    yield
    os.chdir(old)


def _first_view(pipeline):
    model = pipeline.model
    _, bundle, target = next(eval_views(model, pipeline.datamanager.fixed_indices_eval_dataloader, 1))
    return model, bundle, target


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return image_metrics(a.float().cpu(), b.float().cpu(), None)["psnr"]


@pytest.mark.parametrize("method", list(SHIPPED))
def test_cuda_and_cpu_renders_agree(method):
    renders = {}
    for device in ("cpu", "cuda"):
        model, bundle, _ = _first_view(load_pipeline(SHIPPED[method], device=device)[1])
        assert model.device.type == device
        with torch.inference_mode():
            stock = model.render_stock(bundle)
            ours, _ = model.render_with_activations(bundle, 1, "std_half")
        renders[device] = (stock.get("rgb_fine", stock.get("rgb")), ours["rgb"])
    for cpu, cuda in zip(renders["cpu"], renders["cuda"], strict=True):
        assert _psnr(cuda, cpu) > AGREE_DB


@pytest.mark.parametrize("precision", list(REDUCED_DB))
def test_reduced_precision_stays_close_to_fp32(precision):
    model, bundle, target = _first_view(load_pipeline(SHIPPED["activation-nerf"], device="cuda")[1])
    results = {}
    for p in ("fp32", precision):
        for sampler in ("stock", "activation"):
            model.set_inference(inference_sampler=sampler, precision=p)
            results[(sampler, p)] = model.get_outputs_for_camera_ray_bundle(bundle)["rgb"]
    for sampler in ("stock", "activation"):
        assert results[(sampler, precision)].dtype == torch.float32
        assert _psnr(results[(sampler, precision)], results[(sampler, "fp32")]) > REDUCED_DB[precision]
    assert torch.get_float32_matmul_precision() == "highest"  # tf32 is switched off again


def test_benchmark_runs_nerfacc_and_tf32_on_cuda(tmp_path):
    out = tmp_path / "bench"
    args = ["--load-config", SHIPPED["activation-nerf"], "--layer", "1", "--fct", "1", "--repeats", "1"]
    args += ["--no-upsample", "--no-gate", "--no-sampling", "--max-images", "1", "--grid-resolution", "16"]
    args += ["--occgrid-resolution", "64", "--precision", "fp32", "tf32", "--output-dir", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed_quality", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = json.loads((out / "results.json").read_text())["runs"]
    assert run["device"].startswith("cuda") and "NerfAcc occupancy grid" not in run["not_run"]
    for precision in ("fp32", "tf32"):
        row = run["methods"][f"NerfAcc occupancy grid 64^3 @{precision}"]
        assert row["psnr"] > 10 and 0 < row["macs_ratio"] < 1.5
        assert run["methods"][f"base @{precision}"]["peak_mem_mb"] > 0
