"""The models' inference setting (what nerfstudio's whole-camera renders use), precision, and the sampling options."""

from __future__ import annotations

import math

import pytest
import torch
from nerfstudio.model_components.scene_colliders import NearFarCollider

from nerfinternals import internals
from nerfinternals.metrics import image_metrics
from nerfinternals.precision import check_precision, precision_scope
from tests.runs import build_model, camera_bundle

KINDS = ["nerf", "mipnerf", "nerfacto", "nerfacto-stock"]


def _equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture()
def model(request):
    """A fresh model per test: the tests change its inference setting."""
    return build_model(request.param)


@pytest.mark.parametrize("model", KINDS, indirect=True)
def test_default_setting_is_the_stock_pipeline(model):
    bundle = camera_bundle()
    assert model.config.inference_sampler == "stock" and model.config.precision == "fp32"
    outputs = model.get_outputs_for_camera_ray_bundle(bundle)
    stock = model.render_stock(bundle)
    assert all(torch.equal(outputs[k], v) for k, v in stock.items())  # bit-identical
    # plus the generic names for the stock model's final pass (NeRF: rgb = rgb_fine)
    assert torch.equal(outputs["rgb"], stock["rgb_fine"] if "rgb_fine" in stock else stock["rgb"])


@pytest.mark.parametrize("model", KINDS, indirect=True)
def test_activation_setting_renders_with_activations(model):
    bundle = camera_bundle()
    model.set_inference(inference_sampler="activation", probe_layer=0, probe_fct="std_half_sq")
    outputs = model.get_outputs_for_camera_ray_bundle(bundle)
    expected, _ = model.render_with_activations(bundle, 0, "std_half_sq")
    assert all(torch.equal(outputs[k], v) for k, v in expected.items())
    assert model.STOCK_ONLY_OUTPUT not in outputs  # no coarse / proposal pass ran
    if model.OUTPUT_ALIASES:  # NeRF, Mip-NeRF: the stock names of the final outputs as well
        assert torch.equal(outputs["rgb_fine"], outputs["rgb"])
    # every option of the setting reaches the render
    model.set_inference(probe_upsample=True, probe_samples=4, probe_in_box=True)
    expected, _ = model.render_with_activations(
        bundle, 0, "std_half_sq", upsample=True, n_probe=4, in_box=True
    )
    assert _equal(
        {k: v for k, v in model.get_outputs_for_camera_ray_bundle(bundle).items() if k in expected}, expected
    )


@pytest.mark.parametrize("model", ["nerf"], indirect=True)
def test_training_is_untouched_by_the_setting(model):
    bundle = camera_bundle()
    model.set_inference(inference_sampler="activation", precision="bf16", keep_near_plane=True)
    model.train()
    try:
        outputs = model.get_outputs_for_camera_ray_bundle(bundle)
    finally:
        model.eval()
    assert "rgb_coarse" in outputs  # the stock coarse-to-fine pipeline, full precision
    assert outputs["rgb_fine"].dtype == torch.float32


@pytest.mark.parametrize("model", ["nerf"], indirect=True)
def test_bad_settings_are_refused_before_anything_changes(model):
    before = model.inference_settings()
    for settings, message in [
        ({"inference_sampler": "activation", "probe_layer": 4}, r"valid layers are 0\.\.3"),
        ({"inference_sampler": "activation", "probe_fct": "nope"}, "unknown transform"),
        ({"precision": "tf32"}, "tf32 needs a CUDA device"),
        ({"precision": "fp8"}, "is not one of fp32, tf32, bf16, fp16"),
        ({"probe_samples": 1}, "must be 0 .* or at least 2"),
        ({"probe_lyer": 1}, "unknown inference setting"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.set_inference(**settings)
    assert model.inference_settings() == before


def test_a_fused_tcnn_mlp_cannot_be_probed():
    model = build_model("nerf")
    model.field_coarse.mlp_base.tcnn_encoding = object()  # what nerfstudio's MLP holds with tcnn
    with pytest.raises(ValueError, match="fused tiny-cuda-nn network"):
        model.set_inference(inference_sampler="activation")
    model.set_inference(inference_sampler="stock")  # the stock sampler needs no probe


@pytest.mark.parametrize("model", ["nerf", "nerfacto-bounded"], indirect=True)
def test_keep_near_plane_applies_to_stock_and_ours(model):
    bundle = camera_bundle()
    collider = model.collider
    assert isinstance(collider, NearFarCollider) and collider.reset_near_plane
    reset = model.render_stock(bundle)
    model.set_inference(keep_near_plane=True)
    assert not collider.reset_near_plane
    kept = model.render_stock(bundle)
    depth = "depth_fine" if "depth_fine" in kept else "depth"
    assert not torch.equal(reset[depth], kept[depth])
    rays = collider(bundle.flatten()[:4])
    assert torch.allclose(rays.nears, torch.full_like(rays.nears, 2.0))
    model.set_inference(keep_near_plane=False)
    assert collider.reset_near_plane


@pytest.mark.parametrize("model", ["nerf", "nerfacto"], indirect=True)
def test_activation_outputs_score_like_stock_ones(model):
    """ns-eval and training's eval images call get_image_metrics_and_images on our outputs too."""
    bundle = camera_bundle()
    batch = {"image": torch.rand(*bundle.shape, 3)}
    model.set_inference(inference_sampler="activation")
    metrics, images = model.get_image_metrics_and_images(
        model.get_outputs_for_camera_ray_bundle(bundle), batch
    )
    stock_metrics, _ = model.get_image_metrics_and_images(model.render_stock(bundle), batch)
    # the stock model's names for its final pass, less the coarse pass's, less unavailable LPIPS
    assert set(metrics) == set(stock_metrics) - {"coarse_psnr"}
    assert math.isfinite(metrics["psnr"])
    assert images["img"].shape == (bundle.shape[0], 2 * bundle.shape[1], 3)


# ---- precision ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", KINDS, indirect=True)
def test_fp32_is_bit_identical_to_stock_nerfstudio(model):
    """The fp32 setting renders exactly what nerfstudio's own whole-camera render of the parent class does."""
    bundle = camera_bundle()
    stock_class = next(c for c in type(model).__mro__ if c.__module__.startswith("nerfstudio.models."))
    reference = stock_class.get_outputs_for_camera_ray_bundle(model, bundle)
    model.set_inference(precision="fp32")
    outputs = model.get_outputs_for_camera_ray_bundle(bundle)
    assert reference and all(torch.equal(outputs[k], v) for k, v in reference.items())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_cpu_is_close_to_fp32(models, precision):
    model, bundle = models("nerf"), camera_bundle()
    reference = model.render_stock(bundle)["rgb_fine"]
    model.set_inference(precision=precision)
    try:
        outputs = model.get_outputs_for_camera_ray_bundle(bundle)
    finally:
        model.set_inference(precision="fp32")
    assert outputs["rgb"].dtype == torch.float32  # outputs come back in float32
    assert image_metrics(outputs["rgb"], reference, None)["psnr"] > 30.0


def test_precision_checks(monkeypatch):
    check_precision("bf16", "cpu")
    with pytest.raises(ValueError, match="tf32 needs a CUDA device"):
        check_precision("tf32", "cpu")
    with pytest.raises(ValueError, match="not one of"):
        check_precision("fp64", "cpu")
    cuda = torch.device("cuda")  # check_precision only looks at the device type
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(ValueError) as err:
        check_precision("bf16", cuda)
    assert str(err.value) == "--precision bf16 is not supported by this CUDA device: use fp16, tf32 or fp32"
    check_precision("fp16", cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    check_precision("bf16", cuda)


def test_matmul_precision_is_restored_after_an_exception():
    from nerfinternals.precision import _matmul_precision

    before = torch.get_float32_matmul_precision()
    assert before != "high"
    with pytest.raises(RuntimeError, match="render failed"):
        with _matmul_precision("high"):
            assert torch.get_float32_matmul_precision() == "high"
            raise RuntimeError("render failed")
    assert torch.get_float32_matmul_precision() == before


def test_overlapping_tf32_scopes_in_two_threads_restore_the_setting_once():
    """Viewer threads: A enters, B enters, A leaves (B still renders in TF32), B leaves (restored)."""
    import threading

    before = torch.get_float32_matmul_precision()
    assert before != "high"
    cuda = torch.device("cuda")  # the TF32 scope touches no CUDA state, only the matmul setting
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, str] = {}
    errors: list[BaseException] = []

    def wait(event: threading.Event) -> None:
        assert event.wait(timeout=30), "the other thread did not get there"

    def thread_a() -> None:
        with precision_scope("tf32", cuda):
            a_in.set()
            wait(b_in)
        a_out.set()

    def thread_b() -> None:
        wait(a_in)
        with precision_scope("tf32", cuda):
            b_in.set()
            wait(a_out)
            seen["b after a left"] = torch.get_float32_matmul_precision()

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as err:  # reported by the main thread
                errors.append(err)
                for event in (a_in, b_in, a_out):  # let the other thread finish
                    event.set()

        return run

    threads = [threading.Thread(target=guarded(f)) for f in (thread_a, thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert seen == {"b after a left": "high"}
    assert torch.get_float32_matmul_precision() == before


# ---- the sampling options -----------------------------------------------------------------------------
def test_resample_along_ray_interpolates_linearly():
    v = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    assert torch.equal(internals.resample_along_ray(v, 4), v)
    # 8 samples from 4: centres at probe positions -1/4, 1/4, 3/4, ... clamped to [0, 3]
    expected = torch.tensor([[0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]])
    assert torch.allclose(internals.resample_along_ray(v, 8), expected)
    assert internals.resample_along_ray(torch.randn(5, 16), 64).shape == (5, 64)


def test_restrict_to_box_clips_near_far_and_flags_misses():
    from nerfstudio.cameras.rays import RayBundle

    origins = torch.tensor([[0.0, 0.0, 4.0], [0.0, 3.0, 4.0], [0.0, 0.0, 4.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    rays = RayBundle(
        origins=origins,
        directions=directions,
        pixel_area=torch.ones(3, 1),
        nears=torch.tensor([[0.0], [0.0], [5.0]]),
        fars=torch.tensor([[6.0], [6.0], [6.0]]),
    )
    hit = internals.restrict_to_box(rays, torch.tensor([[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]]))
    assert hit.tolist() == [True, False, True]
    assert torch.allclose(rays.nears[:, 0], torch.tensor([2.5, rays.nears[1, 0].item(), 5.0]))
    assert torch.allclose(rays.fars[[0, 2], 0], torch.tensor([5.5, 5.5]))
    assert rays.fars[1, 0] == rays.nears[1, 0]  # a miss keeps an empty interval


@pytest.mark.parametrize("kind", ["nerf", "mipnerf", "nerfacto-bounded"])
def test_in_box_samples_inside_the_box_and_skips_rays_that_miss_it(models, kind):
    model = models(kind)
    bundle = camera_bundle(width=16, height=12, z=4.0)
    # a wide field of view: the corner rays miss the [-1.5, 1.5]^3 box
    bundle.directions[..., :2] *= 3.0
    bundle.directions = bundle.directions / bundle.directions.norm(dim=-1, keepdim=True)
    outputs, _ = model.render_with_activations(bundle, 1, "std_half", in_box=True)
    mask = outputs["gate_mask"][..., 0]
    assert not mask[0, 0] and mask[6, 8] and 0 < int(mask.sum()) < mask.numel()
    background = model.background_rgb()
    assert torch.allclose(outputs["rgb"][~mask], background.expand(int((~mask).sum()), 3))
    assert (outputs["accumulation"][~mask] == 0).all()
    # the uniform samples of a crossing ray lie inside the box
    rays = next(model._chunks(bundle, in_box=True))[2]
    samples = model.probe_samples(rays, model.num_probe_samples)
    positions = samples.frustums.get_positions()[mask.reshape(-1)[: len(rays)]]
    assert (positions.abs() <= 1.5 + 1e-4).all()


def test_in_box_is_a_no_op_without_a_box(models):
    model, bundle = models("nerfacto"), camera_bundle()  # scene contraction: every point is in the box
    assert model.probe_box() is None
    plain, _ = model.render_with_activations(bundle, 0, "std")
    boxed, _ = model.render_with_activations(bundle, 0, "std", in_box=True)
    assert _equal(plain, boxed)


@pytest.mark.parametrize("kind", ["nerf", "nerfacto"])
def test_fewer_probe_samples_run_the_probe_on_fewer_points(models, kind):
    model, bundle = models(kind), camera_bundle()
    n = model.num_probe_samples
    seen = []
    handle = model.probe_mlp.layers[0].register_forward_hook(lambda m, i, o: seen.append(o.shape[-2]))
    try:
        outputs, _ = model.render_with_activations(bundle, 0, "std", n_probe=n // 2)
    finally:
        handle.remove()
    assert set(seen) == {n // 2}
    assert torch.isfinite(outputs["rgb"]).all()
    same, _ = model.render_with_activations(bundle, 0, "std", n_probe=n)
    assert _equal(same, model.render_with_activations(bundle, 0, "std")[0])  # n_probe = N is the default
    assert model.macs_per_ray(0, num_samples=n // 2) < model.macs_per_ray(0)
