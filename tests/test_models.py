"""Model construction offline, state_dict compatibility with stock nerfstudio, compute accounting."""

from __future__ import annotations

import math
import shutil
import socket
import urllib.error
import warnings

import pytest
import torch
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.models.mipnerf import MipNerfModel
from nerfstudio.models.nerfacto import NerfactoModelConfig
from nerfstudio.models.vanilla_nerf import NeRFModel, VanillaModelConfig
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

from nerfinternals import metrics
from nerfinternals.metrics import OfflineLPIPS, alexnet_weights_path, image_metrics
from nerfinternals.models import (
    ActivationMipNerfModelConfig,
    ActivationNerfactoModelConfig,
    ActivationNeRFModelConfig,
)

SCENE_BOX = SceneBox(aabb=torch.tensor([[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]]))
COLLIDER = {"near_plane": 2.0, "far_plane": 6.0}


def _build(config):
    return config.setup(scene_box=SCENE_BOX, num_train_data=2)


def _assert_loads_both_ways(ours, stock):
    assert sorted(ours.state_dict()) == sorted(stock.state_dict())
    ours.load_state_dict(stock.state_dict(), strict=True)
    stock.load_state_dict(ours.state_dict(), strict=True)
    for key, value in stock.state_dict().items():
        if ".lpips." not in f".{key}":
            assert torch.equal(ours.state_dict()[key], value), key


def _lpips_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "LPIPS" in str(w.message)]


def test_our_models_build_offline_and_report_lpips_null(empty_torch_home):
    model = _build(ActivationNeRFModelConfig(collider_params=COLLIDER))
    img = torch.rand(16, 16, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = image_metrics(img, img * 0.9, model.lpips)
        second = image_metrics(img, img * 0.8, model.lpips)
    assert first["lpips"] is None and second["lpips"] is None
    assert first["psnr"] > second["psnr"] > 0 and 0 < first["ssim"] <= 1
    (message,) = _lpips_warnings(caught)
    assert "alexnet-owt-7be5be79.pth" in message and str(empty_torch_home) in message
    assert "NERFINTERNALS_NO_DOWNLOAD=1" in message  # why: the suite disables downloads
    assert not any(empty_torch_home.rglob("*")), "nothing may be downloaded"


def test_lpips_download_failure_is_null_with_one_warning(empty_torch_home, monkeypatch):
    """Not in the cache, downloads allowed, no network: null, one warning with the error and the file."""
    monkeypatch.delenv("NERFINTERNALS_NO_DOWNLOAD")
    attempts = []

    def offline(request, *args, **kwargs):
        attempts.append((request.full_url, socket.getdefaulttimeout()))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", offline)  # what torch.hub downloads through
    timeout = socket.getdefaulttimeout()
    ours = OfflineLPIPS()
    a = torch.rand(1, 3, 32, 32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert math.isnan(ours(a, a * 0.5).item()) and math.isnan(ours(a, a).item())
    assert attempts == [("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", 15.0)]
    assert socket.getdefaulttimeout() == timeout  # the short timeout is only for the download
    (message,) = _lpips_warnings(caught)
    assert "URLError" in message and "Temporary failure in name resolution" in message
    expected = empty_torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert "Place alexnet-owt-7be5be79.pth (from " in message and f"at {expected} " in message
    assert not [p for p in empty_torch_home.rglob("*") if p.is_file()], "no partial download left"


def test_lpips_downloads_the_weights_when_online(empty_torch_home, standin_alexnet_file, monkeypatch):
    """Not in the cache, downloads allowed: torch.hub fetches the file into the cache (the transfer is
    faked with a stand-in file); LPIPS then equals torchmetrics' own, which loads that cached file."""
    monkeypatch.delenv("NERFINTERNALS_NO_DOWNLOAD")
    served = standin_alexnet_file
    fetched = []

    def transfer(url, dst, hash_prefix=None, progress=True):
        fetched.append((url, hash_prefix))
        shutil.copyfile(served, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", transfer)
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    ours = OfflineLPIPS()(a, b).item()
    assert fetched == [("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "7be5be79")]
    assert alexnet_weights_path() == empty_torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert alexnet_weights_path().read_bytes() == served.read_bytes()
    stock = LearnedPerceptualImagePatchSimilarity(normalize=True)(a, b).item()
    assert math.isfinite(ours) and ours == pytest.approx(stock, rel=1e-5)
    assert len(fetched) == 1  # torchmetrics found the file in the cache


def test_lpips_with_local_weights_matches_torchmetrics(standin_alexnet_home, monkeypatch):
    monkeypatch.delenv("NERFINTERNALS_NO_DOWNLOAD")
    monkeypatch.setattr(
        metrics, "download_alexnet_weights", lambda: pytest.fail("downloaded although in the cache")
    )
    ours = OfflineLPIPS()
    stock = LearnedPerceptualImagePatchSimilarity(normalize=True)
    assert sorted(ours.state_dict()) == sorted(stock.state_dict())
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    value = ours(a, b).item()
    assert math.isfinite(value) and value == pytest.approx(stock(a, b).item(), rel=1e-5)


def test_lpips_below_alexnets_smallest_input_is_null_with_one_warning(standin_alexnet_home, monkeypatch):
    """torchmetrics' LPIPS fails on an image side below 31 px (AlexNet's second pool has no output): ours
    is null there, with one warning, and equal to torchmetrics' from 31 px on."""
    monkeypatch.delenv("NERFINTERNALS_NO_DOWNLOAD")
    ours, stock = OfflineLPIPS(), LearnedPerceptualImagePatchSimilarity(normalize=True)
    small = torch.rand(1, 3, metrics.LPIPS_MIN_SIDE - 1, 48), torch.rand(1, 3, metrics.LPIPS_MIN_SIDE - 1, 48)
    with pytest.raises(RuntimeError, match="Output size is too small"):
        stock(*small)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert math.isnan(ours(*small).item()) and math.isnan(ours(*small).item())
    assert len(_lpips_warnings(caught)) == 1
    edge = torch.rand(1, 3, metrics.LPIPS_MIN_SIDE, 48), torch.rand(1, 3, metrics.LPIPS_MIN_SIDE, 48)
    assert ours(*edge).item() == pytest.approx(stock(*edge).item(), rel=1e-5)


def test_lpips_weights_are_never_taken_from_a_checkpoint(standin_alexnet_home):
    ours = OfflineLPIPS()
    ours.available()
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    ours.load_state_dict({k: torch.zeros_like(v) for k, v in before.items()})
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())


def test_nerf_state_dict_equals_stock_vanilla_nerf(standin_alexnet_home):
    torch.manual_seed(0)
    stock = _build(VanillaModelConfig(_target=NeRFModel, collider_params=COLLIDER))
    ours = _build(ActivationNeRFModelConfig(collider_params=COLLIDER))
    _assert_loads_both_ways(ours, stock)


def test_mipnerf_state_dict_equals_stock_mipnerf(standin_alexnet_home):
    stock = _build(VanillaModelConfig(_target=MipNerfModel, collider_params=COLLIDER))
    ours = _build(ActivationMipNerfModelConfig(collider_params=COLLIDER))
    _assert_loads_both_ways(ours, stock)


def test_nerfacto_field_keys_equal_stock(standin_alexnet_home):
    stock = _build(NerfactoModelConfig(implementation="torch"))
    ours = _build(ActivationNerfactoModelConfig())
    field_keys = sorted(k for k in stock.state_dict() if k.startswith("field."))
    assert field_keys == sorted(k for k in ours.state_dict() if k.startswith("field."))
    # Proposal networks differ by design: 4-layer, 256-wide MLPs on a positional encoding.
    mlp = ours.proposal_networks[0].mlp_base
    assert [(lin.in_features, lin.out_features) for lin in mlp.layers] == [
        (63, 256),
        (256, 256),
        (256, 256),
        (256, 1),
    ]
    # With hash proposal networks it is stock nerfacto, key for key.
    _assert_loads_both_ways(_build(ActivationNerfactoModelConfig(proposal_field="hash")), stock)


@pytest.mark.parametrize(
    ("config", "ideal"),
    [
        (ActivationNeRFModelConfig(collider_params=COLLIDER), 192 / 256),
        (ActivationMipNerfModelConfig(collider_params=COLLIDER, num_coarse_samples=128), 128 / 256),
    ],
)
def test_ours_needs_fewer_multiply_adds(empty_torch_home, config, ideal):
    model = _build(config)
    base = model.macs_per_ray(None)
    ratios = [model.macs_per_ray(layer) / base for layer in (0, 1, 2)]
    # Skipping the coarse pass leaves `ideal`; the probe adds its layers 0..l on the N samples.
    assert ideal < ratios[0] < ratios[1] < ratios[2] < 1
    assert ratios[0] < ideal + 0.03
    assert model.macs_per_ray(0, upsample=True) < model.macs_per_ray(0)
