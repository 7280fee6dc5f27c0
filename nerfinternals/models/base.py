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
    def macs_per_ray(
        self, layer: int | None, upsample: bool = False, rendered_fraction: float = 1.0
    ) -> float:
        """Multiply-adds of the MLPs per ray: the stock pipeline (``layer=None``) or ours.

        Ours = probe + (stock - replaced network) x ``rendered_fraction`` (the share of pixels the
        gate lets through; 1 without gating). The probe runs layers 0..l on N samples of every
        pixel (with ``upsample`` on a quarter of the pixels with N/2 samples). Encodings, hash
        look-ups and compositing are not counted.
        """
        stock = self.stock_macs_per_ray()
        if layer is None:
            return float(stock)
        n = self.num_probe_samples
        probe = internals.probe_macs(self.probe_mlp, layer) * (internals.half(n) / 4 if upsample else n)
        return float(probe + (stock - self.skipped_macs_per_ray()) * rendered_fraction)

    def get_image_metrics_and_images(self, outputs, batch):
        metrics, images = super().get_image_metrics_and_images(outputs, batch)
        return drop_nan_lpips(metrics), images

    def activation_volume(self, ray_bundle: RayBundle, layer: int, num_samples: int) -> Tensor:
        """v for ``num_samples`` uniform samples of each (collided) ray: shape (R, num_samples)."""
        samples = self.probe_samples(ray_bundle, num_samples)
        return internals.activation_feature(self.probe_mlp, self.probe_inputs(samples), layer)

    def estimate_density(self, ray_samples: RaySamples, v: Tensor, fct: str) -> Tensor:
        """d̂ = TRANSFORMS[fct](v), zero where ``probe_support`` is 0: (R, S) -> (R, S)."""
        density = internals.density_from_activation(v, fct)
        support = self.probe_support(ray_samples)
        return density if support is None else density * support

    def estimate_weights(self, ray_samples: RaySamples, v: Tensor, fct: str) -> Tensor:
        """ŵ: the normalised weights of d̂ on ``ray_samples``, shape (R, S, 1)."""
        return internals.weights_from_density(ray_samples, self.estimate_density(ray_samples, v, fct))

    gate_background: Tensor | None = None
    """Colour of pixels the gate skips when the renderer has no fixed background colour
    ("random" / "last_sample", e.g. nerfacto); :func:`nerfinternals.loading.load_pipeline` sets it
    to the dataset's alpha colour. None: black (what ``blend_background`` uses then)."""

    def background_rgb(self) -> Tensor:
        """The colour of pixels that are not rendered, shape (3,)."""
        color = self.renderer_rgb.background_color
        if isinstance(color, str) and color in ("random", "last_sample"):
            if self.gate_background is not None:
                return self.gate_background.to(self.device).reshape(3)
            color = "black"
        return self.renderer_rgb.get_background_color(color, shape=(3,), device=self.device)

    def _chunks(
        self, camera_ray_bundle: RayBundle, index: Tensor | None = None
    ) -> Iterator[tuple[int, int, RayBundle]]:
        """Collided chunks of ``eval_num_rays_per_chunk`` rays of the flattened bundle (or of its
        rays at ``index``); yields (start, end, rays) with positions in that sequence."""
        flat = camera_ray_bundle.flatten()
        if index is not None:
            flat = flat[index.to(flat.origins.device)]
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

    def _gate(
        self, camera_ray_bundle: RayBundle, layer: int, threshold: float | None, volume: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The activation map V_l (H, W) and the gate mask (H, W), True where V_l < threshold."""
        height, width = camera_ray_bundle.shape
        if volume is None:
            volume = self._probe_image(camera_ray_bundle, layer, self.num_probe_samples)
        act_map = internals.activation_map(volume.view(height, width, -1))
        return act_map, internals.gate_mask(act_map, threshold)

    _GATE_EMPTY = {"rgb": 3, "accumulation": 1, "depth": 1}
    """Outputs (and channels) of a gated render that admits no pixel."""

    def _assemble(
        self,
        parts: dict[str, list[Tensor]],
        shape: tuple[int, int],
        mask: Tensor | None,
        device: torch.device,
    ) -> dict[str, Tensor]:
        """(H, W, C) images from per-chunk outputs; with ``mask``, the chunks hold only the pixels
        where it is True and the others take the background colour (``rgb*``) or 0 (the rest)."""
        height, width = shape
        if mask is None:
            return {name: torch.cat(p).view(height, width, -1) for name, p in parts.items()}
        flat_mask = mask.reshape(-1).to(device)
        if not parts:  # nothing admitted: the outputs every model renders
            parts = {name: [torch.zeros(0, c, device=device)] for name, c in self._GATE_EMPTY.items()}
        images = {}
        for name, p in parts.items():
            values = torch.cat(p).flatten(0, -2)  # (pixels rendered, C)
            full = values.new_zeros(height * width, values.shape[-1])
            if name.startswith("rgb") and values.shape[-1] == 3:
                full[:] = self.background_rgb().to(full)
            full[flat_mask] = values
            images[name] = full.view(height, width, -1)
        images["gate_mask"] = mask.view(height, width, 1).to(device)
        return images

    @torch.inference_mode()
    def render_with_activations(
        self,
        camera_ray_bundle: RayBundle,
        layer: int,
        fct: str,
        upsample: bool = False,
        gate: bool = False,
        threshold: float | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, float]]:
        """Render an (H, W) camera ray bundle with activation-informed sampling.

        Args:
            camera_ray_bundle: rays of shape (H, W).
            layer: probed layer (0-based).
            fct: transform name, one of :data:`nerfinternals.internals.TRANSFORMS`.
            upsample: probe every 2nd pixel per axis with N/2 samples and upsample the volume.
            gate: first compute the activation map V_l (per-pixel mean of v over the ray's samples;
                with ``upsample``, of the upsampled volume); pixels with V_l >= ``threshold`` skip
                importance sampling and the fine pass and take the background colour (accumulation
                and depth 0).
            threshold: the gate's threshold; None: the image mean μ(V_l). ``math.inf`` admits every
                pixel and reproduces the ungated render exactly.

        Returns:
            outputs (each (H, W, C); with ``gate`` also ``"gate_mask"`` (H, W, 1) bool, True where
            rendered, and ``"activation_map"`` (H, W, 1)) and stage times ``{"t_act", "t_coarse",
            "t_fine"}`` in seconds (the gate's map counts to ``t_act``).
        """
        internals.check_probe_layer(self.probe_mlp, layer)
        height, width = camera_ray_bundle.shape
        n = self.num_probe_samples
        timer = StageTimer(self.device)
        probed = mask = act_map = index = None
        with timer.stage("t_act"):
            if upsample:
                coarse_grid = pixel_grid(camera_ray_bundle, range(0, height, 2), range(0, width, 2))
                small = self._probe_image(coarse_grid, layer, internals.half(n))
                probed = internals.upsample_nearest(small, (height, width, n)).reshape(height * width, n)
            elif gate:
                probed = self._probe_image(camera_ray_bundle, layer, n).reshape(height * width, n)
            if gate:
                act_map, mask = self._gate(camera_ray_bundle, layer, threshold, volume=probed)
                index = mask.reshape(-1).nonzero().squeeze(-1)

        outputs: dict[str, list[Tensor]] = defaultdict(list)
        for start, end, rays in self._chunks(camera_ray_bundle, index):
            with timer.stage("t_act"):
                samples = self.probe_samples(rays, n)
                if probed is None:
                    v = internals.activation_feature(self.probe_mlp, self.probe_inputs(samples), layer)
                else:
                    rows = slice(start, end) if index is None else index[start:end]
                    v = probed[rows].to(self.device)
                weights = self.estimate_weights(samples, v, fct)
            with timer.stage("t_fine"):
                chunk_out = self.render_from_weights(rays, samples, weights)
            for name, value in chunk_out.items():
                outputs[name].append(value.to(camera_ray_bundle.origins.device))
        images = self._assemble(outputs, (height, width), mask, camera_ray_bundle.origins.device)
        if act_map is not None:
            images["activation_map"] = act_map.view(height, width, 1).to(camera_ray_bundle.origins.device)
        times = {"t_act": timer.totals["t_act"], "t_coarse": 0.0, "t_fine": timer.totals["t_fine"]}
        return images, times

    @torch.inference_mode()
    def render_gated(
        self, camera_ray_bundle: RayBundle, layer: int, threshold: float | None = None
    ) -> tuple[dict[str, Tensor], dict[str, float]]:
        """The stock coarse-to-fine pipeline, run only for pixels with V_l < ``threshold`` (the paper's Fig. 3).

        V_l is the activation map of the probed network (per-pixel mean of v over the N uniform
        samples); ``threshold=None`` is its image mean μ(V_l), ``math.inf`` admits every pixel and
        reproduces ``get_outputs_for_camera_ray_bundle`` exactly. Other pixels take the background
        colour (``rgb*`` outputs) and 0 (every other output).

        Returns:
            the stock outputs (H, W, C) plus ``"gate_mask"`` (H, W, 1) bool and ``"activation_map"``
            (H, W, 1); times ``{"t_act", "t_render"}`` (probe + map, stock pipeline) in seconds.
        """
        internals.check_probe_layer(self.probe_mlp, layer)
        height, width = camera_ray_bundle.shape
        timer = StageTimer(self.device)
        with timer.stage("t_act"):
            act_map, mask = self._gate(camera_ray_bundle, layer, threshold)
            index = mask.reshape(-1).nonzero().squeeze(-1).to(camera_ray_bundle.origins.device)
        parts: dict[str, list[Tensor]] = {}
        with timer.stage("t_render"):
            if len(index):
                admitted = camera_ray_bundle.flatten()[index].reshape((len(index), 1))
                outputs = self.get_outputs_for_camera_ray_bundle(admitted)
                parts = {name: [value] for name, value in outputs.items()}
        device = camera_ray_bundle.origins.device
        images = self._assemble(parts, (height, width), mask, device)
        images["activation_map"] = act_map.view(height, width, 1).to(device)
        return images, {"t_act": timer.totals["t_act"], "t_render": timer.totals["t_render"]}
