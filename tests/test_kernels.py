"""The fast kernels give nerfstudio's bits: scene contraction and hash encoding against nerfstudio's own
functions on random inputs and in whole renders of every sampler; compiled within 1e-5; a fallback."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch._dynamo
import torch._inductor.config as inductor
from nerfstudio.field_components.encodings import HashEncoding
from nerfstudio.field_components.spatial_distortions import SceneContraction

from nerfinternals import kernels
from nerfinternals.estimators import ESTIMATORS
from tests.runs import build_model, camera_bundle


def _positions(n: int, seed: int) -> torch.Tensor:
    """Positions inside, on and far outside the unit ball of every norm, both signs, zeros included."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g) * torch.logspace(-3, 3, n)[:, None]
    x[:8] = torch.tensor(
        [[1.0, 0, 0], [-1.0, 0.5, 0], [0, 0, 0], [1.0, 1.0, -1.0], [0.999999, 0, 0]] + [[2.0, -3, 4]] * 3
    )
    return x


def test_contraction_is_nerfstudios_bit_for_bit():
    x = _positions(100_000, 0)
    stock, fast = SceneContraction(order=float("inf")), SceneContraction(order=float("inf"))
    kernels.install(fast)
    assert type(fast) is kernels.FastSceneContraction
    with torch.no_grad():
        assert torch.equal(fast(x), stock(x))
        assert torch.equal(kernels.contract_inf(x.view(100, 1000, 3)), stock(x.view(100, 1000, 3)))
        frobenius = SceneContraction()
        kernels.install(frobenius)  # another order: nerfstudio's code
        assert torch.equal(frobenius(x), SceneContraction()(x))


def _encodings(**kwargs) -> tuple[HashEncoding, HashEncoding]:
    torch.manual_seed(0)
    stock = HashEncoding(implementation="torch", **kwargs)
    torch.nn.init.uniform_(stock.hash_table, -1.0, 1.0)  # values of a trained table's size, not 1e-4
    fast = HashEncoding(implementation="torch", **kwargs)
    fast.load_state_dict(stock.state_dict())
    kernels.install(fast)
    return stock, fast


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_levels=4, log2_hashmap_size=12, features_per_level=2),  # the tests' models
        dict(num_levels=8, log2_hashmap_size=17, features_per_level=2, max_res=2048),  # the real runs'
        dict(num_levels=16, log2_hashmap_size=19, features_per_level=4, max_res=4096),  # nerfacto's default
    ],
)
@pytest.mark.parametrize("int32", [True, False])
def test_hash_encoding_is_nerfstudios_bit_for_bit(kwargs, int32, monkeypatch):
    if not int32:  # the int64 path, for tables too large for int32 indices
        monkeypatch.setattr(kernels, "_int32_hash", lambda encoding: False)
    stock, fast = _encodings(**kwargs)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(20_000, 3, generator=g) * 1.2 - 0.1  # some outside [0, 1]: negative cells hash too
    with torch.no_grad():
        assert torch.equal(fast(x), stock(x))
        assert torch.equal(fast(x.view(40, 500, 3)), stock(x.view(40, 500, 3)))


def test_training_runs_nerfstudios_code(monkeypatch):
    stock, fast = _encodings(num_levels=4, log2_hashmap_size=12)
    x = torch.rand(1000, 3)
    stock(x).square().sum().backward()
    fast(x).square().sum().backward()
    assert torch.equal(fast.hash_table.grad, stock.hash_table.grad)
    calls = []
    original = kernels.hash_encode
    monkeypatch.setattr(kernels, "hash_encode", lambda *a: calls.append(1) or original(*a))
    fast(x)  # with autograd: nerfstudio's
    with torch.no_grad(), kernels.kernel_scope("stock"):
        fast(x)  # stock kernels: nerfstudio's
    assert calls == []
    with torch.no_grad():
        fast(x)
    assert calls == [1]


@pytest.mark.parametrize("kind", ["nerfacto", "nerfacto-stock"])
def test_every_sampler_renders_the_same_pixels_with_either_kernels(kind):
    model = build_model(kind)
    assert sum(isinstance(m, kernels.FastHashEncoding) for m in model.modules()) >= 1
    assert isinstance(model.field.spatial_distortion, kernels.FastSceneContraction)
    bundle = camera_bundle()
    for sampler in ESTIMATORS:
        kwargs = dict(layer=0, fct="std_half", fine_samples=6, skip_empty=True)
        with kernels.kernel_scope("stock"):
            model.__dict__.pop("_density_grids", None)  # filled with these kernels
            stock, _ = model.render_sampled(bundle, sampler, **kwargs)
        model.__dict__.pop("_density_grids", None)
        fast, _ = model.render_sampled(bundle, sampler, **kwargs)
        assert stock.keys() == fast.keys()
        for name in stock:
            assert torch.equal(fast[name], stock[name]), (sampler, name)


def test_the_setting_selects_the_kernels_of_whole_camera_renders(monkeypatch):
    model = build_model("nerfacto-stock")
    bundle = camera_bundle()
    seen = []
    original = kernels.hash_encode
    monkeypatch.setattr(kernels, "hash_encode", lambda *a: seen.append(kernels.active()) or original(*a))
    model.set_inference(kernels="stock")
    stock = model.get_outputs_for_camera_ray_bundle(bundle)
    assert seen == []
    model.set_inference(kernels="fast")
    fast = model.get_outputs_for_camera_ray_bundle(bundle)
    assert seen and set(seen) == {"fast"}
    assert torch.equal(stock["rgb"], fast["rgb"])
    with pytest.raises(ValueError, match="--kernels 'triton' is not one of fast, compiled, stock"):
        model.set_inference(kernels="triton")


def test_compiled_renders_are_within_1e5_of_eager(monkeypatch):
    """The hash encodings and the grid's look-up chain compiled, in whole renders of a nerfacto: within 1e-5
    of the eager render (inductor may fuse and reassociate float sums; colours lie in [0, 1])."""
    model = build_model("nerfacto-stock")
    bundle = camera_bundle()
    monkeypatch.setattr(kernels, "_compiled", {"fns": {}, "failed": ""})
    try:
        for sampler in ("stock", "grid-all"):
            kwargs = dict(fine_samples=6, grid_resolution=8)
            eager, _ = model.render_sampled(bundle, sampler, **kwargs)
            with kernels.kernel_scope("compiled"):
                compiled, _ = model.render_sampled(bundle, sampler, **kwargs)
            assert not kernels._compiled["failed"], kernels._compiled["failed"]
            assert set(kernels._compiled["fns"]) >= {kernels.hash_encode}
            for name in ("rgb", "accumulation"):
                assert torch.allclose(compiled[name], eager[name], rtol=0.0, atol=1e-5), (sampler, name)
        assert len(kernels._compiled["fns"]) == 2  # the hash encoding and the grid's look-up chain
    finally:
        torch._dynamo.reset()


def test_compiled_hash_encoding_matches_and_falls_back_without_a_compiler(monkeypatch):
    stock, fast = _encodings(num_levels=2, log2_hashmap_size=8)
    x = torch.rand(3000, 3)
    with torch.no_grad():
        expected = stock(x)
        monkeypatch.setattr(kernels, "_compiled", {"fns": {}, "failed": ""})
        with kernels.kernel_scope("compiled"):
            compiled = fast(x)
            again = fast(x[:1234])  # another chunk size: dynamic shapes, no recompilation needed
        assert not kernels._compiled["failed"], kernels._compiled["failed"]
        # inductor's code may reassociate the blend: within 1e-5 (features are within [-1, 1])
        assert torch.allclose(compiled, expected, rtol=0.0, atol=1e-5)
        assert torch.allclose(again, expected[:1234], rtol=0.0, atol=1e-5)

        torch._dynamo.reset()
        monkeypatch.setattr(inductor.cpp, "cxx", ("/nonexistent/g++",))
        monkeypatch.setattr(inductor, "fx_graph_cache", False)
        monkeypatch.setattr(kernels, "_compiled", {"fns": {}, "failed": ""})
        other = HashEncoding(implementation="torch", num_levels=3, log2_hashmap_size=9)
        kernels.install(other)
        with warnings.catch_warnings(record=True) as caught, kernels.kernel_scope("compiled"):
            warnings.simplefilter("always")
            first, second = other(x), other(x)
        torch._dynamo.reset()
    messages = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    assert len(messages) == 1, [str(w.message) for w in caught]
    assert kernels._compiled["failed"]
    with torch.no_grad():
        reference = HashEncoding(implementation="torch", num_levels=3, log2_hashmap_size=9)
        reference.load_state_dict(other.state_dict())
        assert torch.equal(first, reference(x)) and torch.equal(second, first)


def test_unknown_kernels_are_one_line():
    with pytest.raises(ValueError, match=r"^--kernels 'x' is not one of fast, compiled, stock$"):
        with kernels.kernel_scope("x"):
            pass
    assert kernels.active() == "fast"
