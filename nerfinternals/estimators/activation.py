"""The paper's estimate: density from the replaced network's layer-l activations (the probe).

Also the probe over a whole image (for upsampling and the gate) and the activation gate of Fig. 3.
"""

from __future__ import annotations

import torch
from nerfstudio.cameras.rays import RayBundle, RaySamples
from torch import Tensor

from nerfinternals import cost, internals
from nerfinternals.estimators.base import Estimator, RenderOptions
from nerfinternals.utils import pixel_grid


def probe_image(
    model,
    camera_ray_bundle: RayBundle,
    layer: int,
    num_samples: int,
    in_box: bool = False,
    n_probe: int | None = None,
) -> Tensor:
    """The (H, W, num_samples) activation volume of a camera's rays."""
    h, w = camera_ray_bundle.shape
    parts = [
        model.activation_volume(rays, layer, num_samples, n_probe)
        for _, _, rays in model._chunks(camera_ray_bundle, in_box=in_box)
    ]
    return torch.cat(parts).view(h, w, num_samples)


def gate(
    model,
    camera_ray_bundle: RayBundle,
    layer: int,
    threshold: float | None,
    volume: Tensor | None = None,
    within: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The activation map V_l (H, W) and the gate mask (H, W), True where V_l < threshold.

    With ``within`` (H, W), only those pixels can pass, and the default threshold is the mean of V_l over
    them."""
    height, width = camera_ray_bundle.shape
    if volume is None:
        volume = probe_image(model, camera_ray_bundle, layer, model.num_probe_samples)
    act_map = internals.activation_map(volume.view(height, width, -1))
    if within is None:
        return act_map, internals.gate_mask(act_map, threshold)
    if threshold is None and within.any():
        threshold = float(act_map[within].mean())
    return act_map, internals.gate_mask(act_map, threshold) & within


class ActivationEstimator(Estimator):
    """d̂ = fct(v) from layer ``layer`` of the replaced network's MLP on the uniform samples (the paper),
    optionally probed on fewer samples (``n_probe``), on every 2nd pixel (``upsample``) or gated."""

    name = "activation"
    probes = True

    def __init__(self, model, options: RenderOptions) -> None:
        super().__init__(model, options)
        n = model.num_probe_samples
        self.n_probe = None if options.n_probe == n else options.n_probe
        self.probed: Tensor | None = None  # (H * W, N) activations probed for the whole image

    @classmethod
    def check(cls, model, options: RenderOptions) -> None:
        internals.check_probe_layer(model.probe_mlp, options.layer)

    def prepare(self, camera_ray_bundle, mask, in_box):
        o, model = self.options, self.model
        height, width = camera_ray_bundle.shape
        n = model.num_probe_samples
        if o.upsample:
            coarse = pixel_grid(camera_ray_bundle, range(0, height, 2), range(0, width, 2))
            small = probe_image(model, coarse, o.layer, internals.half(self.n_probe or n), in_box)
            self.probed = internals.upsample_nearest(small, (height, width, n)).reshape(height * width, n)
        elif o.gate:
            volume = probe_image(model, camera_ray_bundle, o.layer, n, in_box, self.n_probe)
            self.probed = volume.reshape(height * width, n)
        if o.gate:
            act_map, mask = gate(
                model, camera_ray_bundle, o.layer, o.threshold, volume=self.probed, within=mask
            )
            self.outputs["activation_map"] = act_map.reshape(-1, 1)
        return mask

    def activations(self, rays: RayBundle, samples: RaySamples, rows: slice | Tensor) -> Tensor:
        """v (R, N) of the probe for ``rays`` (their uniform ``samples``, rows of the probed volume)."""
        model = self.model
        if self.probed is not None:
            return self.probed[rows].to(model.device)
        if self.n_probe is None:
            return internals.activation_feature(
                model.probe_mlp, model.probe_inputs(samples), self.options.layer
            )
        return model.activation_volume(rays, self.options.layer, model.num_probe_samples, self.n_probe)

    def weights(self, rays, samples, rows):
        v = self.activations(rays, samples, rows)
        return samples.get_weights(self.model.estimate_density(samples, v, self.options.fct)[..., None])

    @classmethod
    def folder_name(cls, options):
        o = options
        return f"layer_{o.layer:02d}_ups_{int(o.upsample)}_fct_{o.fct}" + (
            f"_n{o.n_probe}" if o.n_probe else ""
        )

    @classmethod
    def label(cls, options):
        return f"l{options.layer} {options.fct}" + (f" n{options.n_probe}" if options.n_probe else "")

    @classmethod
    def description(cls, options):
        o = options
        text = f"{cls.name} sampler: layer {o.layer}, {o.fct}"
        text += ", upsample" if o.upsample else ""
        text += ", gate" if o.gate else ""
        return text + (f", {o.n_probe} probe samples" if o.n_probe else "")

    @classmethod
    def _probed_samples(cls, options, n: int) -> float:
        m = options.n_probe or n
        return internals.half(m) / 4 if options.upsample else m  # upsampled: a quarter of the pixels

    @classmethod
    def estimate_macs(cls, model, options):
        n = cls._probed_samples(options, model.num_probe_samples)
        return internals.probe_macs(model.probe_mlp, options.layer) * n

    @classmethod
    def estimate_operations(cls, model, options, n, rendered_fraction, probed):
        ops = cost.probe_operations(model, options.layer, cls._probed_samples(options, n))
        ops["composite"] += n
        return ops
