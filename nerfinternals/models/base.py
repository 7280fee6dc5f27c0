"""Activation-informed rendering shared by the three models.

Each model supplies five hooks (what to probe, how to sample and encode, how to render from the
estimated weights, and its per-ray compute); :class:`ActivationRenderingMixin` runs the method of
:mod:`nerfinternals.internals` over a whole camera, chunked like nerfstudio's own
``get_outputs_for_camera_ray_bundle``, and times each stage.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator

import torch
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.field_components.mlp import MLP
from torch import Tensor

from nerfinternals import internals
from nerfinternals.metrics import drop_nan_lpips


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so a clock read measures finished work (no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pixel_grid(bundle: RayBundle, rows: range, cols: range) -> RayBundle:
    """The rays of an (H, W) bundle at the given rows and columns, shape (len(rows), len(cols))."""
    width = bundle.shape[1]
    r = torch.as_tensor(list(rows), device=bundle.origins.device)
    c = torch.as_tensor(list(cols), device=bundle.origins.device)
    index = (r[:, None] * width + c[None, :]).reshape(-1)
    return bundle.flatten()[index].reshape((len(rows), len(cols)))


class StageTimer:
    """Accumulates synchronised wall time per named stage."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        synchronize(self.device)
        start = time.perf_counter()
        yield
        synchronize(self.device)
        self.totals[name] += time.perf_counter() - start


class ActivationRenderingMixin:
    """Render with the first (coarse / proposal) network replaced by its layer-l activations.

    Subclasses (nerfstudio models) implement the hooks below.
    """

    # ---- hooks -------------------------------------------------------------------------------
    @property
    def probe_mlp(self) -> MLP:
        """The MLP whose activations are probed."""
        raise NotImplementedError

    @property
    def num_probe_samples(self) -> int:
        """N, the number of uniform samples the replaced network would have evaluated."""
        raise NotImplementedError

    def probe_samples(self, ray_bundle: RayBundle, num_samples: int) -> RaySamples:
        """The stock model's first (uniform) samples, ``num_samples`` per ray."""
        raise NotImplementedError

    def probe_inputs(self, ray_samples: RaySamples) -> Tensor:
        """Encoded sample positions as the probed MLP sees them, shape (R, S, in_dim)."""
        raise NotImplementedError

    def probe_support(self, ray_samples: RaySamples) -> Tensor | None:
        """Mask (R, S) of samples that can hold density at all (None: all of them)."""
        return None

    def render_from_weights(self, ray_bundle: RayBundle, ray_samples: RaySamples, weights: Tensor) -> dict:
        """Everything after the replaced network: importance sampling, fine pass, renderer."""
        raise NotImplementedError

    def stock_macs_per_ray(self) -> int:
        """Multiply-adds of the MLPs per ray in the stock pipeline."""
        raise NotImplementedError

    def skipped_macs_per_ray(self) -> int:
        """Multiply-adds per ray of the network that activation-informed rendering replaces."""
        raise NotImplementedError

    # ---- the method --------------------------------------------------------------------------
    def macs_per_ray(self, layer: int | None, upsample: bool = False) -> float:
        """Multiply-adds of the MLPs per ray: the stock pipeline (``layer=None``) or ours.

        Ours = stock - replaced network + probe (layers 0..l on N samples; with ``upsample`` on a
        quarter of the pixels with N/2 samples). Encodings, hash look-ups and compositing are not
        counted.
        """
        stock = self.stock_macs_per_ray()
        if layer is None:
            return float(stock)
        n = self.num_probe_samples
        probe = internals.probe_macs(self.probe_mlp, layer) * (internals.half(n) / 4 if upsample else n)
        return float(stock - self.skipped_macs_per_ray() + probe)

    def get_image_metrics_and_images(self, outputs, batch):
        metrics, images = super().get_image_metrics_and_images(outputs, batch)
        return drop_nan_lpips(metrics), images

    def activation_volume(self, ray_bundle: RayBundle, layer: int, num_samples: int) -> Tensor:
        """v for ``num_samples`` uniform samples of each (collided) ray: shape (R, num_samples)."""
        samples = self.probe_samples(ray_bundle, num_samples)
        return internals.activation_feature(self.probe_mlp, self.probe_inputs(samples), layer)

    def _chunks(self, camera_ray_bundle: RayBundle) -> Iterator[tuple[int, int, RayBundle]]:
        flat = camera_ray_bundle.flatten()
        step = self.config.eval_num_rays_per_chunk
        for start in range(0, len(flat), step):
            rays = flat[start : start + step].to(self.device)
            if self.collider is not None:
                rays = self.collider(rays)
            yield start, start + len(rays), rays

    def _probe_image(self, camera_ray_bundle: RayBundle, layer: int, num_samples: int) -> Tensor:
        """The (H, W, num_samples) activation volume of a camera's rays."""
        h, w = camera_ray_bundle.shape
        parts = [
            self.activation_volume(rays, layer, num_samples) for _, _, rays in self._chunks(camera_ray_bundle)
        ]
        return torch.cat(parts).view(h, w, num_samples)

    @torch.inference_mode()
    def render_with_activations(
        self, camera_ray_bundle: RayBundle, layer: int, fct: str, upsample: bool = False
    ) -> tuple[dict[str, Tensor], dict[str, float]]:
        """Render an (H, W) camera ray bundle with activation-informed sampling.

        Args:
            camera_ray_bundle: rays of shape (H, W).
            layer: probed layer (0-based).
            fct: transform name, one of :data:`nerfinternals.internals.TRANSFORMS`.
            upsample: probe every 2nd pixel per axis with N/2 samples and upsample the volume.

        Returns:
            outputs (each (H, W, C)) and stage times ``{"t_act", "t_coarse", "t_fine"}`` in seconds.
        """
        internals.check_probe_layer(self.probe_mlp, layer)
        height, width = camera_ray_bundle.shape
        n = self.num_probe_samples
        timer = StageTimer(self.device)
        probed = None
        if upsample:
            with timer.stage("t_act"):
                coarse_grid = pixel_grid(camera_ray_bundle, range(0, height, 2), range(0, width, 2))
                small = self._probe_image(coarse_grid, layer, internals.half(n))
                probed = internals.upsample_nearest(small, (height, width, n)).reshape(height * width, n)

        outputs: dict[str, list[Tensor]] = defaultdict(list)
        for start, end, rays in self._chunks(camera_ray_bundle):
            with timer.stage("t_act"):
                samples = self.probe_samples(rays, n)
                if probed is None:
                    v = internals.activation_feature(self.probe_mlp, self.probe_inputs(samples), layer)
                else:
                    v = probed[start:end].to(self.device)
                density = internals.density_from_activation(v, fct)
                support = self.probe_support(samples)
                if support is not None:
                    density = density * support
                weights = internals.weights_from_density(samples, density)
            with timer.stage("t_fine"):
                chunk_out = self.render_from_weights(rays, samples, weights)
            for name, value in chunk_out.items():
                outputs[name].append(value.to(camera_ray_bundle.origins.device))
        images = {name: torch.cat(parts).view(height, width, -1) for name, parts in outputs.items()}
        times = {"t_act": timer.totals["t_act"], "t_coarse": 0.0, "t_fine": timer.totals["t_fine"]}
        return images, times
