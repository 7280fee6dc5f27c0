"""Activation-informed rendering shared by the three models: their hooks and the inference setting.

Each model supplies the hooks below (what to probe, how to sample and encode, how to render from the
estimated weights, its grid and its per-ray compute); :meth:`ActivationRenderingMixin.render_sampled`
renders a whole camera with an estimator of :mod:`nerfinternals.estimators`. When the model is not
training, nerfstudio's whole-camera entry point (eval images, ``ns-render``, the viewer, ``ns-eval``)
renders with the model's *inference setting* (:class:`ActivationInferenceConfig`; default: stock, fp32).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import torch
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.field_components.mlp import MLP
from nerfstudio.model_components.scene_colliders import NearFarCollider
from torch import Tensor

from nerfinternals import cost, internals, kernels
from nerfinternals.estimators import ESTIMATORS, Estimator, RenderOptions, loop
from nerfinternals.grid import DensityGrid
from nerfinternals.metrics import drop_nan_lpips, final_pass_metrics_and_images
from nerfinternals.models import inference
from nerfinternals.models.inference import INFERENCE_FIELDS, ActivationInferenceConfig, render_kwargs
from nerfinternals.precision import as_float32, check_precision, precision_scope


class ActivationRenderingMixin:
    """Render with the first (coarse / proposal) network replaced by its layer-l activations.

    Subclasses (nerfstudio models) implement the hooks below.
    """

    config: ActivationInferenceConfig

    OUTPUT_ALIASES: dict[str, str] = {}
    """Generic output name -> the stock model's name for its final output (NeRF: "rgb" -> "rgb_fine")."""
    METRIC_PREFIX: str = ""
    """Prefix of the stock model's final-pass SSIM / LPIPS metric names (NeRF: "fine_")."""
    STOCK_ONLY_OUTPUT: str = ""
    """An output only the stock pipeline renders (tells stock outputs from ours)."""

    def populate_modules(self) -> None:
        super().populate_modules()
        kernels.install(self)
        from nerfinternals.viewer import add_viewer_controls

        add_viewer_controls(self)

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

    def probe_box(self) -> Tensor | None:
        """The (2, 3) box outside which the scene holds no density, for ``in_box`` (None: unbounded)."""
        return None

    def render_from_weights(
        self,
        ray_bundle: RayBundle,
        ray_samples: RaySamples,
        weights: Tensor,
        fine_samples: int = 0,
        proposal_stages: bool = True,
    ) -> dict:
        """Everything after the replaced network: importance sampling from ``weights`` (R, N, 1) on the
        uniform ``ray_samples``, the final pass and the renderers, with K = ``fine_samples`` final samples
        (0: the model's own); ``proposal_stages`` False: the weights place the final samples directly."""
        raise NotImplementedError

    def later_proposal_counts(self, fine_samples: int = 0) -> list[int]:
        """Samples per ray of the proposal stages between the replaced network and the final field."""
        return [k for _, k in self.fine_stages(fine_samples)[:-1]]

    @property
    def replaced_network(self) -> torch.nn.Module:
        """The network that the activation and grid samplers replace (coarse field, first proposal network)."""
        raise NotImplementedError

    def stock_weights(self, ray_samples: RaySamples) -> Tensor:
        """The replaced network's weights (R, N, 1) on the uniform samples, as the stock pipeline computes them."""
        raise NotImplementedError

    def grid_coordinates(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Positions (..., 3) in the density grid's unit cube, and the mask (...) of those the replaced
        network can give density to (see :mod:`nerfinternals.grid`)."""
        raise NotImplementedError

    def grid_density(self, unit: Tensor, resolution: int, source: str = "replaced") -> Tensor:
        """The replaced network's (or, ``source`` "field", the final field's) density (M,) at unit
        coordinates (M, 3), the nodes of a ``resolution``^3 density grid."""
        raise NotImplementedError

    def fine_stages(
        self, fine_samples: int = 0, proposal_stages: bool = True, initial_samples: int = 0
    ) -> list[tuple[torch.nn.Module, int]]:
        """(network, samples per ray) of every pass after the replaced network, with ``fine_samples`` (0:
        stock); ``proposal_stages`` False: the final field only (grid-all); ``initial_samples``: N uniform
        samples instead of the replaced network's (NeRF's stock fine pass keeps them)."""
        raise NotImplementedError

    def fine_macs_per_ray(
        self, fine_samples: int = 0, proposal_stages: bool = True, initial_samples: int = 0
    ) -> int:
        """Multiply-adds per ray of everything after the replaced network (see :meth:`fine_stages`)."""
        stages = self.fine_stages(fine_samples, proposal_stages, initial_samples)
        return sum(k * internals.linear_macs(net) for net, k in stages)

    def skipped_macs_per_ray(self) -> int:
        """Multiply-adds per ray of the network that activation-informed rendering replaces."""
        return self.num_probe_samples * internals.linear_macs(self.replaced_network)

    # ---- the method --------------------------------------------------------------------------
    def macs_per_ray(self, layer: int | None, *args, **kwargs) -> float:
        """Multiply-adds of the MLPs per ray of a setting (:func:`nerfinternals.cost.macs_per_ray`)."""
        return cost.macs_per_ray(self, layer, *args, **kwargs)

    def render_macs_per_ray(self, kwargs: dict, rendered_fraction: float) -> float:
        """Multiply-adds per ray of a :meth:`render_sampled` call (:func:`nerfinternals.cost.render_macs_per_ray`)."""
        return cost.render_macs_per_ray(self, kwargs, rendered_fraction)

    # ---- the inference setting ---------------------------------------------------------------
    def inference_settings(self) -> dict:
        """The current inference setting: every :class:`ActivationInferenceConfig` field."""
        return {name: getattr(self.config, name) for name in INFERENCE_FIELDS}

    def check_inference(self, settings: dict) -> None:
        """Raise ``ValueError`` (one line) unless ``settings`` can render on this model and device."""
        inference.check_sampler(settings["inference_sampler"])
        if ESTIMATORS[settings["inference_sampler"]].probes:
            internals.check_probe_layer(self.probe_mlp, settings["probe_layer"])
            if settings["probe_fct"] not in internals.TRANSFORMS:
                raise ValueError(
                    f"unknown transform {settings['probe_fct']!r}; choose one of {', '.join(internals.TRANSFORMS)}"
                )
        if settings["probe_samples"] < 0 or settings["probe_samples"] == 1:
            raise ValueError(
                f"--probe-samples must be 0 (as many as the replaced network) or at least 2, got {settings['probe_samples']}"
            )
        inference.check_fine_samples(settings["fine_samples"])
        inference.check_grid_resolution(settings["grid_resolution"])
        inference.check_initial_samples(settings["initial_samples"])
        inference.check_empty_threshold(settings["empty_threshold"])
        check_precision(settings["precision"], self.device)
        if settings["kernels"] not in kernels.KERNELS:
            raise ValueError(f"--kernels {settings['kernels']!r} is not one of {', '.join(kernels.KERNELS)}")

    def set_inference(self, **settings) -> None:
        """Change the inference setting (fields of :class:`ActivationInferenceConfig`), checked first."""
        unknown = sorted(set(settings) - set(INFERENCE_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown inference setting(s) {', '.join(unknown)}: known are {', '.join(INFERENCE_FIELDS)}"
            )
        self.check_inference({**self.inference_settings(), **settings})
        for name, value in settings.items():
            setattr(self.config, name, value)
        self._apply_near_plane()

    def _apply_near_plane(self) -> None:
        """Keep the training near plane at eval when ``keep_near_plane`` (a no-op for other colliders)."""
        collider = getattr(self, "collider", None)
        if isinstance(collider, NearFarCollider):
            if not hasattr(collider, "stock_reset_near_plane"):
                collider.stock_reset_near_plane = collider.reset_near_plane
            collider.reset_near_plane = collider.stock_reset_near_plane and not self.config.keep_near_plane

    def render_stock(self, camera_ray_bundle: RayBundle) -> dict[str, Tensor]:
        """The stock pipeline over an (H, W) bundle (nerfstudio's ``get_outputs_for_camera_ray_bundle``),
        whatever the inference sampler; honours ``keep_near_plane``."""
        self._apply_near_plane()
        return super().get_outputs_for_camera_ray_bundle(camera_ray_bundle)

    def render_setting(self, camera_ray_bundle: RayBundle, settings: dict | None = None) -> dict[str, Tensor]:
        """Render an (H, W) bundle with an inference setting (default: the current one), at its precision's
        arithmetic but without the scope (the caller's): the stock sampler at the model's own budget
        without skipping is nerfstudio's own pipeline, everything else :meth:`render_sampled`."""
        c = settings or self.inference_settings()
        if c["inference_sampler"] == "stock" and not c["fine_samples"] and not c["skip_empty"]:
            return self.render_stock(camera_ray_bundle)
        outputs, self.last_stage_times = self.render_sampled(camera_ray_bundle, **render_kwargs(c))
        return outputs

    def get_outputs_for_camera_ray_bundle(self, camera_ray_bundle: RayBundle) -> dict[str, Tensor]:
        """nerfstudio's whole-camera render. Not training: the inference setting's sampler at its precision,
        with the stock model's output names as well (NeRF: ``rgb_fine`` and ``rgb`` alike)."""
        if self.training:
            return super().get_outputs_for_camera_ray_bundle(camera_ray_bundle)
        with precision_scope(self.config.precision, self.device), kernels.kernel_scope(self.config.kernels):
            outputs = self.render_setting(camera_ray_bundle)
        return self.with_output_aliases(as_float32(outputs))

    def with_output_aliases(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """``outputs`` plus, for each pair of :attr:`OUTPUT_ALIASES`, the name it lacks (same tensor)."""
        out = dict(outputs)
        for generic, stock in self.OUTPUT_ALIASES.items():
            if generic in out and stock not in out:
                out[stock] = out[generic]
            elif stock in out and generic not in out:
                out[generic] = out[stock]
        return out

    def get_image_metrics_and_images(self, outputs, batch):
        if self.STOCK_ONLY_OUTPUT in outputs:
            metrics, images = super().get_image_metrics_and_images(outputs, batch)
            return drop_nan_lpips(metrics), images
        return final_pass_metrics_and_images(self, outputs, batch)

    # ---- the method, step by step --------------------------------------------------------------
    def activation_volume(
        self, ray_bundle: RayBundle, layer: int, num_samples: int, n_probe: int | None = None
    ) -> Tensor:
        """v for ``num_samples`` uniform samples of each (collided) ray: shape (R, num_samples).

        With ``n_probe`` the probe runs on that many uniform samples and v is interpolated along the ray.
        """
        samples = self.probe_samples(ray_bundle, n_probe or num_samples)
        v = internals.activation_feature(self.probe_mlp, self.probe_inputs(samples), layer)
        return internals.resample_along_ray(v, num_samples)

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
        self, camera_ray_bundle: RayBundle, index: Tensor | None = None, in_box: bool = False
    ) -> Iterator[tuple[int, int, RayBundle]]:
        """Collided chunks of ``eval_num_rays_per_chunk`` rays of the flattened bundle (or of its
        rays at ``index``), with ``in_box`` clipped to the scene box; yields (start, end, rays) with
        positions in that sequence."""
        flat = camera_ray_bundle.flatten()
        if index is not None:
            flat = flat[index.to(flat.origins.device)]
        box = self.probe_box() if in_box else None
        step = self.config.eval_num_rays_per_chunk
        for start in range(0, len(flat), step):
            rays = flat[start : start + step].to(self.device)
            if self.collider is not None:
                rays = self.collider(rays)
            if box is not None:
                internals.restrict_to_box(rays, box.to(self.device))
            yield start, start + len(rays), rays

    # ---- the density grid ----------------------------------------------------------------------
    def density_grid(self, resolution: int, source: str = "replaced") -> DensityGrid:
        """A ``resolution``^3 density grid (:mod:`nerfinternals.grid`) of the replaced network or (``source``
        "field") the final field, kept while that network's parameters are unchanged."""
        network = self.replaced_network if source == "replaced" else self.field
        params = list(network.parameters())
        key = (str(self.device), tuple(p.data_ptr() for p in params), tuple(p._version for p in params))
        cache = self.__dict__.setdefault("_density_grids", {})
        if (resolution, source) not in cache or cache[resolution, source][0] != key:
            density_at = functools.partial(self.grid_density, resolution=resolution, source=source)
            cache[resolution, source] = (key, DensityGrid(density_at, resolution, self.device))
        return cache[resolution, source][1]

    def grid_of(self, kwargs: dict) -> DensityGrid | None:
        """The density grid a :meth:`render_sampled` call (its keyword arguments) uses, filled now if not yet."""
        options = RenderOptions(**kwargs)
        source = ESTIMATORS[options.sampler].grid_source(self, options)
        return None if source is None else self.density_grid(options.grid_resolution, source)

    # ---- rendering ---------------------------------------------------------------------------
    @torch.inference_mode()
    def render_with_activations(
        self, camera_ray_bundle: RayBundle, layer: int, fct: str, **options
    ) -> tuple[dict[str, Tensor], dict[str, float]]:
        """:meth:`render_sampled` with the activation sampler (the paper's method)."""
        return self.render_sampled(camera_ray_bundle, "activation", layer, fct, **options)

    @torch.inference_mode()
    def render_sampled(
        self,
        camera_ray_bundle: RayBundle,
        sampler: str = "activation",
        *args,
        stage_times: bool = True,
        **kwargs,
    ) -> tuple[dict[str, Tensor], dict[str, float]]:
        """Render an (H, W) camera ray bundle: estimate, skip, sample, render (:mod:`nerfinternals.estimators`).

        Per ray, an estimate gives weights on the N uniform samples the replaced network would have seen;
        rays it finds empty are skipped (``skip_empty``); K importance samples are drawn from the weights
        and the final pass renders them. The arguments after ``camera_ray_bundle`` (rays (H, W)) are the
        fields of :class:`~nerfinternals.estimators.RenderOptions`, in order; ``stage_times`` False times
        nothing (True: the stages, synchronising on CUDA between them).

        Returns:
            outputs (each (H, W, C); with ``gate``, ``in_box`` or ``skip_empty`` also ``"gate_mask"``
            (H, W, 1) bool, True where rendered; with ``gate`` ``"activation_map"`` (H, W, 1)) and stage
            times ``{"t_act", "t_coarse", "t_fine"}`` in seconds: the estimate (the stock sampler's
            under ``t_coarse``; the gate's map and the box test count to ``t_act``) and the rest.
        """
        options = RenderOptions(sampler, *args, **kwargs)
        estimator = self.estimator(options)
        return loop.render(self, camera_ray_bundle, estimator, stage_times=stage_times)

    def estimator(self, options: RenderOptions) -> Estimator:
        """The estimator of ``options.sampler``, checked against this model (one-line ``ValueError``)."""
        inference.check_sampler(options.sampler)
        cls = ESTIMATORS[options.sampler]
        if not cls.probes:  # the probe's options do not apply
            options = dataclasses.replace(options, upsample=False, gate=False)
        if options.initial_samples and not cls.any_initial_samples:
            raise ValueError(f"--initial-samples applies to grid and grid-all, not to {options.sampler}")
        inference.check_initial_samples(options.initial_samples)
        cls.check(self, options)
        return cls(self, options)

    @torch.inference_mode()
    def render_gated(self, camera_ray_bundle: RayBundle, layer: int, threshold: float | None = None):
        """The stock pipeline run only for pixels with V_l < ``threshold`` (:func:`nerfinternals.analysis.render_gated`)."""
        from nerfinternals.analysis import render_gated

        return render_gated(self, camera_ray_bundle, layer, threshold)
