"""Viewer controls of the activation-* models (nerfstudio's viewer elements).

:func:`add_viewer_controls` declares the model's inference setting (sampler, probed layer, transform,
fine-sample budget, skip-empty, upsample, gate, precision, kernels) as nerfstudio viewer elements, so that
``ns-viewer``, ``ns-internals-render viewer`` and the viewer of ``ns-train`` show them in the
control panel (under "Custom Elements" / "model"). A change goes through the model's
``set_inference``: an accepted value applies to the next frame, a rejected one leaves the setting as it
was, snaps the control back and shows the reason in the panel's "Status" line. "Last frame" and
"Rendered with" show the render time, resolution and setting of the model's last whole-camera render.

How nerfstudio 1.1.5 finds the elements: the viewer walks the pipeline's attributes
(``nerfstudio.viewer.utils.parse_object``), descending into ``nn.Module`` values, and installs every
``ViewerElement`` it meets in the folder named by its attribute path, in ``dir()`` order (sorted by
attribute name). The elements are therefore plain attributes of the model (``viewer_00_inference_sampler``, ...:
the numbers give the panel order); they are not modules, parameters or buffers, so the model's
``state_dict`` is unchanged. Their callbacks are bound methods of :class:`InferencePanel` (no closures),
so a model without a viewer still pickles and deep-copies (a copy's controls drive the copy).
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import torch
from nerfstudio.viewer.viewer_elements import (
    ViewerCheckbox,
    ViewerDropdown,
    ViewerNumber,
    ViewerParameter,
    ViewerText,
)

from nerfinternals.internals import TRANSFORMS, num_probe_layers
from nerfinternals.kernels import KERNELS
from nerfinternals.models.inference import SAMPLERS
from nerfinternals.precision import PRECISIONS, check_precision
from nerfinternals.utils import synchronize

ATTRIBUTE_PREFIX = "viewer_"
"""Prefix of the model attributes that hold the viewer elements."""

SNAP_BACK_RESEND_S = 0.25
"""Delay before a refused control's value is sent to the browsers again (see :meth:`InferencePanel.snap_back`)."""


def supported_precisions(device) -> list[str]:
    """The precisions that can render on ``device`` (``nerfinternals.precision.check_precision``)."""
    supported = []
    for precision in PRECISIONS:
        try:
            check_precision(precision, device)
        except ValueError:
            continue
        supported.append(precision)
    return supported


def _device(model) -> torch.device:
    """The model's device; the CPU while nerfstudio constructs it (before its device parameter exists)."""
    try:
        return model.device
    except AttributeError:
        return torch.device("cpu")


class _Synced:
    """An element that takes its value (and choices) from the model when the viewer installs it: the
    setting may have changed between the model's construction and the viewer's start
    (``ns-internals-render viewer --sampler ...``, a loaded config)."""

    panel: InferencePanel
    field: str

    def install(self, viser_server) -> None:
        self.panel.refresh(self)
        super().install(viser_server)


class _Dropdown(_Synced, ViewerDropdown):
    pass


class _Number(_Synced, ViewerNumber):
    pass


class _Checkbox(_Synced, ViewerCheckbox):
    pass


class _Readout(ViewerText):
    """A read-only text line. Its callback stays a no-op: the viewer attaches a rerender to every
    element's ``cb_hook``, and a readout updated by each frame would then render frames forever."""

    def __init__(self, name: str, default_value: str, hint: str) -> None:
        super().__init__(name, default_value, disabled=True, hint=hint)

    @property
    def cb_hook(self):
        return _ignore

    @cb_hook.setter
    def cb_hook(self, value) -> None:
        pass


def _ignore(element) -> None:
    """A callback that does nothing."""


class InferencePanel:
    """The inference setting's controls of one model, a status line and the last frame's readouts."""

    def __init__(self, model) -> None:
        self.model = model
        c = model.config
        self.controls: dict[str, ViewerParameter] = {}
        self._add(
            "inference_sampler",
            _Dropdown,
            "Sampler",
            c.inference_sampler,
            options=list(SAMPLERS),
            hint="stock: the model's own sampling; activation: the first layers' activations place the "
            "fine samples (the paper); grid: a density grid of the coarse network; grid-all: nerfacto's "
            "every proposal stage from a grid of the field; hybrid: activations place, the grid skips empty rays",
        )
        self._add(
            "probe_layer",
            _Number,
            "Probed layer",
            c.probe_layer,
            hint=self.layer_hint(),
        )
        self._add(
            "probe_fct",
            _Dropdown,
            "Transform",
            c.probe_fct,
            options=list(TRANSFORMS),
            hint="activation -> density transform",
        )
        self._add(
            "fine_samples",
            _Number,
            "Fine samples",
            c.fine_samples,
            hint="samples of the final pass per ray: 0 = the model's own, else at least 2",
        )
        self._add(
            "initial_samples",
            _Number,
            "Initial samples",
            c.initial_samples,
            hint="grid and grid-all: uniform samples per ray the grid weighs (0 = the replaced network's)",
        )
        self._add(
            "skip_empty",
            _Checkbox,
            "Skip empty rays",
            c.skip_empty,
            hint="rays whose estimate holds no density get the background without a final pass",
        )
        self._add(
            "probe_upsample",
            _Checkbox,
            "Upsample probe",
            c.probe_upsample,
            hint="probe every 2nd pixel per axis with half the samples, upsample the activations",
        )
        self._add(
            "probe_gate",
            _Checkbox,
            "Gate pixels",
            c.probe_gate,
            hint="render only pixels whose mean activation is below the image mean",
        )
        self._add(
            "precision",
            _Dropdown,
            "Precision",
            c.precision,
            options=supported_precisions(_device(model)),
            hint="arithmetic of the render (only the precisions this device supports)",
        )
        self._add(
            "kernels",
            _Dropdown,
            "Kernels",
            c.kernels,
            options=list(KERNELS),
            hint="fast: nerfstudio's contraction and hash encoding, same bits, less time; compiled: through "
            "torch.compile (the next frame compiles, a minute on a CPU); stock: nerfstudio's own",
        )
        self.status = _Readout("Status", "", hint="the last change: applied or rejected")
        self.last_frame = _Readout(
            "Last frame", "no frame yet", hint="render time and resolution of the last frame"
        )
        self.rendered_with = _Readout(
            "Rendered with", "", hint="the sampler, precision and kernels the last frame was rendered with"
        )

    def _add(self, field: str, kind: type, label: str, value: Any, **kwargs) -> None:
        if kind is _Dropdown and value not in kwargs["options"]:
            kwargs["options"] = [*kwargs["options"], value]
        element = kind(label, value, cb_hook=functools.partial(self.on_change, field), **kwargs)
        element.panel, element.field = self, field
        self.controls[field] = element

    def elements(self) -> list[tuple[str, ViewerParameter]]:
        """(name, element) in panel order."""
        readouts = {"status": self.status, "last_frame": self.last_frame, "rendered_with": self.rendered_with}
        return [*self.controls.items(), *readouts.items()]

    # ---- changes -------------------------------------------------------------------------------
    def on_change(self, field: str, element: ViewerParameter) -> None:
        """A control changed: apply its value through ``set_inference``, or show why not and snap back."""
        value = element.value
        current = getattr(self.model.config, field)
        if value == current:
            return  # nothing to do (e.g. the echo of a snap-back)
        try:
            self.model.set_inference(**{field: value})
        except Exception as err:  # ValueError: refused; anything else must not take the viewer down either
            reason = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
            self.status.value = f"rejected: {reason}"
            self.snap_back(field, element)
            return
        self.status.value = f"applied: {element.name} = {value}"

    def snap_back(self, field: str, element: ViewerParameter) -> None:
        """Show the setting's value in ``element`` again. In a viewer, the value is sent once more shortly
        after: viser (0.2.7) relays a browser's change to the other clients after the callbacks have run,
        and that relay replaces the reply not yet sent, so the browser would keep the refused value."""
        element.value = getattr(self.model.config, field)
        if element.gui_handle is not None:
            timer = threading.Timer(SNAP_BACK_RESEND_S, self._resend, args=(field, element))
            timer.daemon = True
            timer.start()

    def _resend(self, field: str, element: ViewerParameter) -> None:
        try:
            element.value = getattr(self.model.config, field)
        except RuntimeError:  # the viewer's server has stopped meanwhile: no browser to update
            pass

    def layer_hint(self) -> str:
        hint = "layer whose activations are probed, 0-based"
        try:  # the probed network may not exist yet (nerfstudio is still constructing the model)
            n = num_probe_layers(self.model.probe_mlp)
        except (AttributeError, ValueError):
            return hint
        return f"{hint} (valid: 0..{n - 1})" if n else f"{hint} (none: this network exposes no activations)"

    def refresh(self, element: ViewerParameter) -> None:
        """Show the model's current value (and, for precision, the choices of its current device)."""
        value = getattr(self.model.config, element.field)
        if element.field == "probe_layer":
            element.hint = self.layer_hint()
        if element.field == "precision":
            options = supported_precisions(self.model.device)
            element.options = options if value in options else [*options, value]
        element.value = value

    # ---- the last frame --------------------------------------------------------------------------
    def timed_render(self, camera_ray_bundle, *args, **kwargs):
        """The model's whole-camera render, timed (synchronised on CUDA); updates "Last frame" and
        "Rendered with" (an interrupted render updates nothing)."""
        model = self.model
        c = model.config
        setting = (
            "stock (training)"
            if model.training
            else f"{c.inference_sampler}, {c.precision}, {c.kernels} kernels"
        )
        synchronize(model.device)
        start = time.perf_counter()
        outputs = type(model).get_outputs_for_camera_ray_bundle(model, camera_ray_bundle, *args, **kwargs)
        synchronize(model.device)
        seconds = time.perf_counter() - start
        height, width = camera_ray_bundle.shape[:2]
        self.last_frame.value = f"{seconds * 1000:.0f} ms, {width}x{height} px"
        self.rendered_with.value = setting
        return outputs


def add_viewer_controls(model) -> None:
    """Declare the inference setting's controls on ``model`` (see the module docstring)."""
    panel = InferencePanel(model)
    model.viewer_panel = panel
    for i, (name, element) in enumerate(panel.elements()):
        setattr(model, f"{ATTRIBUTE_PREFIX}{i:02d}_{name}", element)
    model.get_outputs_for_camera_ray_bundle = panel.timed_render
