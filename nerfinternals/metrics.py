"""Image metrics whose models build offline.

nerfstudio's models build torchmetrics' LPIPS in ``populate_modules``, which downloads AlexNet
weights from the internet: offline, model construction crashes. :class:`OfflineLPIPS` has the same
modules (so state_dict keys equal stock nerfstudio's ``lpips.*`` keys) and loads the AlexNet backbone
only when LPIPS is first computed: from the torch hub cache, else downloaded into it as torchvision
does (with a short network timeout). If that fails (offline, or ``NERFINTERNALS_NO_DOWNLOAD=1``),
LPIPS is NaN after one warning giving the reason and naming the file to place where. Its backbone
weights are never taken from a checkpoint, and before they are loaded they are NaN, so a checkpoint
saved without them cannot pass for a working LPIPS anywhere else.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import warnings
from pathlib import Path

import torch
import torchmetrics.image.lpip
from torch import Tensor, nn
from torchmetrics.functional import structural_similarity_index_measure
from torchmetrics.functional.image.lpips import _NoTrainLpips
from torchvision.models import AlexNet_Weights

LPIPS_BACKBONE = "alex"
"""LPIPS backbone (torchmetrics' and nerfstudio's default); papers often report VGG instead."""


LPIPS_MIN_SIDE = 31
"""The smallest image side LPIPS (AlexNet) takes: below it the second max-pool has no output (conv 11 /
stride 4 then two 3 / 2 pools). Smaller images get a null LPIPS (one warning), not a crash."""

NO_DOWNLOAD_ENV = "NERFINTERNALS_NO_DOWNLOAD"
"""Set to 1 to never download the AlexNet weights (the test suite sets it)."""
DOWNLOAD_TIMEOUT_S = 15.0
"""Socket timeout of the download: offline, it fails within seconds instead of hanging."""


def alexnet_weights_path() -> Path:
    """Where torchvision looks for the AlexNet weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(AlexNet_Weights.IMAGENET1K_V1.url).name


def download_alexnet_weights() -> dict[str, Tensor]:
    """torchvision's AlexNet weights, downloaded into the hub cache (hash-checked) as torchvision does."""
    if os.environ.get(NO_DOWNLOAD_ENV, "0") not in ("", "0"):
        raise RuntimeError(f"downloads are disabled ({NO_DOWNLOAD_ENV}={os.environ[NO_DOWNLOAD_ENV]})")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return torch.hub.load_state_dict_from_url(
            AlexNet_Weights.IMAGENET1K_V1.url,
            map_location="cpu",
            progress=sys.stderr.isatty(),
            check_hash=True,
            weights_only=True,
        )
    finally:
        socket.setdefaulttimeout(previous)


class OfflineLPIPS(nn.Module):
    """LPIPS (AlexNet) with stock nerfstudio's module layout, weights loaded on first use.

    ``forward(a, b)`` takes images in [0, 1] of shape (B, 3, H, W) and returns the mean LPIPS, or
    NaN when the backbone weights are neither in the hub cache nor downloadable.
    """

    def __init__(self, normalize: bool = True, **_: object) -> None:
        super().__init__()
        self.normalize = normalize
        # pnet_rand=True: build the AlexNet backbone without downloading; the linear heads ship
        # with torchmetrics.
        self.net = _NoTrainLpips(net=LPIPS_BACKBONE, pretrained=True, pnet_rand=True)
        with torch.no_grad():
            for p in self.net.net.parameters():
                p.fill_(math.nan)
        self._state: str = "unloaded"  # -> "ready" | "unavailable"
        self._warned_small = False
        self._register_load_state_dict_pre_hook(self._keep_own_weights)

    def _keep_own_weights(self, state_dict, prefix, *args) -> None:
        """Loading a checkpoint leaves our weights as they are (and tolerates absent lpips keys)."""
        for key, value in self.state_dict(prefix=prefix).items():
            state_dict[key] = value

    def available(self) -> bool:
        """Load the backbone on first call (hub cache, else download); False (one warning) if neither works."""
        if self._state == "unloaded":
            path = alexnet_weights_path()
            try:
                if path.is_file():
                    weights = torch.load(path, map_location="cpu", weights_only=True)
                else:
                    weights = download_alexnet_weights()
            except Exception as err:  # no network, a refused or broken download, an unreadable file
                url = AlexNet_Weights.IMAGENET1K_V1.url
                warnings.warn(
                    f"LPIPS is reported as null: the AlexNet weights could not be loaded or downloaded "
                    f"({type(err).__name__}: {err}). Place {path.name} (from {url}) at {path} to enable it.",
                    stacklevel=2,
                )
                self._state = "unavailable"
                return False
            features = {k[len("features.") :]: v for k, v in weights.items() if k.startswith("features.")}
            targets = {f"{i}": layer for s in self.net.net.children() for i, layer in s.named_children()}
            with torch.no_grad():
                for name, value in features.items():
                    idx, kind = name.split(".")
                    getattr(targets[idx], kind).copy_(value)
            self._state = "ready"
        return self._state == "ready"

    def forward(self, img1: Tensor, img2: Tensor) -> Tensor:
        if not self.available():
            return torch.tensor(math.nan, device=img1.device)
        if min(img1.shape[-2:]) < LPIPS_MIN_SIDE:
            if not self._warned_small:
                warnings.warn(
                    f"LPIPS is reported as null for images smaller than {LPIPS_MIN_SIDE} px a side "
                    f"(got {img1.shape[-1]} x {img1.shape[-2]})",
                    stacklevel=2,
                )
                self._warned_small = True
            return torch.tensor(math.nan, device=img1.device)
        with torch.no_grad():
            return self.net(img1.float(), img2.float(), normalize=self.normalize).mean()


@contextlib.contextmanager
def offline_lpips():
    """Within this block, nerfstudio models build :class:`OfflineLPIPS` instead of torchmetrics' LPIPS.

    Stock ``populate_modules`` imports ``LearnedPerceptualImagePatchSimilarity`` from
    ``torchmetrics.image.lpip`` when it runs; this swaps that name for the duration of the call.
    """
    original = torchmetrics.image.lpip.LearnedPerceptualImagePatchSimilarity
    torchmetrics.image.lpip.LearnedPerceptualImagePatchSimilarity = OfflineLPIPS
    try:
        yield
    finally:
        torchmetrics.image.lpip.LearnedPerceptualImagePatchSimilarity = original


def drop_nan_lpips(metrics: dict[str, float]) -> dict[str, float]:
    """Remove LPIPS entries that are NaN (weights unavailable) from a stock metrics dict."""
    return {k: v for k, v in metrics.items() if not (k.endswith("lpips") and math.isnan(v))}


def image_metrics(pred: Tensor, target: Tensor, lpips: OfflineLPIPS | None) -> dict[str, float | None]:
    """PSNR, SSIM (data_range 1) and LPIPS of an (H, W, 3) prediction against its target.

    LPIPS is ``None`` when its weights are unavailable.
    """
    p = pred.clamp(0, 1).permute(2, 0, 1)[None].float()
    t = target.clamp(0, 1).permute(2, 0, 1)[None].float().to(p.device)
    mse = torch.mean((p - t) ** 2)
    psnr = float(-10.0 * torch.log10(mse)) if mse > 0 else math.inf
    ssim = float(structural_similarity_index_measure(p, t, data_range=1.0))
    lp = float(lpips(t, p)) if lpips is not None else math.nan
    return {"psnr": psnr, "ssim": ssim, "lpips": None if math.isnan(lp) else lp}


def final_pass_metrics_and_images(model, outputs, batch) -> tuple[dict, dict]:
    """Metrics and images of a render without coarse / proposal outputs, named as the stock model names
    its final pass: NeRF / Mip-NeRF ``psnr, fine_psnr, fine_ssim, fine_lpips``, nerfacto ``psnr, ssim, lpips``."""
    from nerfstudio.utils import colormaps

    rgb = outputs["rgb"]
    image = model.renderer_rgb.blend_background(batch["image"].to(rgb.device))[..., :3]
    gt, pred = (torch.moveaxis(x, -1, 0)[None] for x in (image, rgb))
    psnr = float(model.psnr(gt, pred))
    prefix = model.METRIC_PREFIX
    metrics = {
        "psnr": psnr,
        f"{prefix}ssim": float(model.ssim(gt, pred)),
        f"{prefix}lpips": float(model.lpips(gt, pred)),
    }
    if prefix:
        metrics[f"{prefix}psnr"] = psnr
    images = {
        "img": torch.cat([image, rgb], dim=1),
        "accumulation": colormaps.apply_colormap(outputs["accumulation"]),
        "depth": colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"]),
    }
    return drop_nan_lpips(metrics), images
