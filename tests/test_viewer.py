"""The viewer controls (nerfinternals.viewer): found by nerfstudio's viewer, changes through set_inference,
rejections shown and undone, the last frame's readouts; the model's state, copies and pickles unchanged."""

from __future__ import annotations

import copy
import io
import pickle
import socket
import time

import pytest
import torch
from nerfstudio.viewer.utils import parse_object
from nerfstudio.viewer.viewer_elements import ViewerElement
from torch import nn

from nerfinternals import viewer
from nerfinternals.internals import TRANSFORMS
from nerfinternals.models.inference import SAMPLERS
from tests.runs import build_model, camera_bundle

KINDS = ["nerf", "mipnerf", "nerfacto"]

# label -> inference field, in panel order
CONTROLS = {
    "Sampler": "inference_sampler",
    "Probed layer": "probe_layer",
    "Transform": "probe_fct",
    "Fine samples": "fine_samples",
    "Initial samples": "initial_samples",
    "Skip empty rays": "skip_empty",
    "Upsample probe": "probe_upsample",
    "Gate pixels": "probe_gate",
    "Precision": "precision",
    "Kernels": "kernels",
}
READOUTS = ["Status", "Last frame", "Rendered with"]


class _Pipeline(nn.Module):
    """What nerfstudio's viewer walks: a pipeline whose ``model`` property is the model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._model = model

    @property
    def model(self) -> nn.Module:
        return self._model


def _elements(model) -> dict[str, ViewerElement]:
    """label -> element, as nerfstudio's viewer finds them on a pipeline holding ``model``."""
    found = parse_object(_Pipeline(model), ViewerElement, "Custom Elements")
    assert all(path.rsplit("/", 1)[0] == "Custom Elements/model" for path, _ in found)
    return {element.name: element for _, element in found}


def _change(element, value) -> None:
    """What the viewer does when a control changes in the page: new value, then the element's callback."""
    element.value = value
    element.cb_hook(element)


@pytest.fixture()
def model(request):
    """A fresh model per test: the tests change its inference setting."""
    return build_model(request.param)


@pytest.mark.parametrize("model", KINDS, indirect=True)
def test_the_viewer_finds_the_controls_in_panel_order(model):
    elements = _elements(model)
    assert list(elements) == [*CONTROLS, *READOUTS]
    assert elements["Sampler"].options == list(SAMPLERS)
    assert elements["Transform"].options == list(TRANSFORMS)
    assert elements["Precision"].options == ["fp32", "bf16", "fp16"]  # no tf32 on a CPU
    assert elements["Kernels"].options == ["fast", "compiled", "stock"]
    settings = model.inference_settings()
    assert {label: elements[label].value for label in CONTROLS} == {
        label: settings[field] for label, field in CONTROLS.items()
    }
    assert all(elements[label].gui_handle is None for label in elements)  # nothing installed without a viewer


@pytest.mark.parametrize("kind", KINDS)
def test_controls_add_no_modules_parameters_or_buffers(kind, monkeypatch):
    ours = build_model(kind)
    monkeypatch.setattr(viewer, "add_viewer_controls", lambda model: None)
    bare = build_model(kind)
    assert not any(name.startswith(viewer.ATTRIBUTE_PREFIX) for name in vars(bare))
    assert sorted(ours.state_dict()) == sorted(bare.state_dict())
    assert [name for name, _ in ours.named_modules()] == [name for name, _ in bare.named_modules()]
    ours.load_state_dict(bare.state_dict(), strict=True)


VALID = {
    "inference_sampler": "activation",
    "probe_layer": 0,
    "probe_fct": "std",
    "fine_samples": 16,
    "initial_samples": 32,
    "skip_empty": True,
    "probe_upsample": True,
    "probe_gate": True,
    "precision": "bf16",
    "kernels": "stock",
}


@pytest.mark.parametrize("model", KINDS, indirect=True)
def test_a_valid_change_updates_the_setting(model):
    elements = _elements(model)
    for label, field in CONTROLS.items():
        before = model.inference_settings()
        _change(elements[label], VALID[field])
        assert model.inference_settings() == {**before, field: VALID[field]}
        assert elements["Status"].value == f"applied: {label} = {VALID[field]}"
        assert elements[label].value == VALID[field]


INVALID = [
    ("Probed layer", 99),  # out of range (the sampler is "activation")
    ("Fine samples", 1),
    ("Fine samples", -4),
    ("Initial samples", 1),
    ("Precision", "tf32"),  # CUDA only; the tests run on the CPU
    ("Sampler", "coarse"),
    ("Transform", "mean"),
]


@pytest.mark.parametrize("model", ["nerf"], indirect=True)
@pytest.mark.parametrize(("label", "value"), INVALID, ids=[f"{label}={value}" for label, value in INVALID])
def test_an_invalid_change_is_shown_undone_and_leaves_the_setting(model, label, value):
    model.set_inference(inference_sampler="activation")
    elements = _elements(model)
    before = model.inference_settings()
    with pytest.raises(ValueError) as raised:
        model.set_inference(**{CONTROLS[label]: value})
    _change(elements[label], value)
    assert model.inference_settings() == before
    assert elements[label].value == before[CONTROLS[label]]  # snapped back
    assert elements["Status"].value == f"rejected: {raised.value}"
    assert "\n" not in elements["Status"].value


@pytest.mark.parametrize("model", ["nerfacto"], indirect=True)
def test_a_change_that_cannot_render_with_the_rest_of_the_setting_is_rejected(model):
    """Layer 9 is accepted under the stock sampler (which probes nothing), then "activation" is refused."""
    elements = _elements(model)
    _change(elements["Probed layer"], 9)
    assert model.config.probe_layer == 9
    _change(elements["Sampler"], "activation")
    assert model.config.inference_sampler == "stock"
    assert elements["Sampler"].value == "stock"
    assert elements["Status"].value.startswith("rejected: --layer 9 is out of range")


@pytest.mark.parametrize("model", KINDS, indirect=True)
def test_last_frame_shows_the_resolution_and_setting_of_the_render(model):
    elements = _elements(model)
    assert elements["Last frame"].value == "no frame yet"
    bundle = camera_bundle(width=13, height=9)
    for sampler in ["stock", "activation", "stock"]:
        _change(elements["Sampler"], sampler)
        outputs = model.get_outputs_for_camera_ray_bundle(bundle)
        unwrapped = type(model).get_outputs_for_camera_ray_bundle(model, bundle)
        assert torch.equal(outputs["rgb"], unwrapped["rgb"])  # the readout changes nothing rendered
        assert elements["Last frame"].value.endswith(" ms, 13x9 px")
        assert float(elements["Last frame"].value.split(" ms")[0]) >= 0
        assert elements["Rendered with"].value == f"{sampler}, fp32, fast kernels"


@pytest.mark.parametrize("model", ["nerf"], indirect=True)
def test_a_deep_copy_has_its_own_controls(model):
    twin = copy.deepcopy(model)
    _change(_elements(twin)["Sampler"], "activation")
    assert twin.config.inference_sampler == "activation"
    assert model.config.inference_sampler == "stock"
    assert _elements(model)["Sampler"].value == "stock"
    twin.get_outputs_for_camera_ray_bundle(camera_bundle())
    assert _elements(twin)["Rendered with"].value == "activation, fp32, fast kernels"
    assert _elements(model)["Rendered with"].value == ""


@pytest.mark.parametrize("model", ["nerf"], indirect=True)
def test_the_controls_pickle(model):
    """Everything the controls add to a model pickles (nerfstudio's own samplers hold lambdas, so the
    model itself is kept out of the pickle here)."""
    added = {name: value for name, value in vars(model).items() if name.startswith(viewer.ATTRIBUTE_PREFIX)}
    added["get_outputs_for_camera_ray_bundle"] = model.get_outputs_for_camera_ray_bundle
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer)
    pickler.persistent_id = lambda obj: "model" if obj is model else None
    pickler.dump(added)
    unpickler = pickle.Unpickler(io.BytesIO(buffer.getvalue()))
    unpickler.persistent_load = lambda pid: model
    restored = unpickler.load()
    sampler = restored["viewer_00_inference_sampler"]
    _change(sampler, "activation")
    assert model.config.inference_sampler == "activation"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("model", ["nerf"], indirect=True)
def test_installed_in_a_viser_server(model):
    """As nerfstudio's viewer installs them: values from the setting at install time, a rejected value
    snapped back in the GUI, and frames that update the readouts without asking for another frame."""
    import viser

    elements = _elements(model)
    # changed after the model's construction, before the viewer starts (as ns-internals-render viewer does)
    model.set_inference(inference_sampler="activation", probe_layer=2)
    server = viser.ViserServer(host="127.0.0.1", port=_free_port(), verbose=False)
    rerenders = []
    try:
        for element in elements.values():
            element.install(server)
            previous = element.cb_hook  # nerfstudio's viewer: every callback also asks for a new frame
            element.cb_hook = lambda e, previous=previous: [previous(e), rerenders.append(e.name)]
        assert elements["Sampler"].gui_handle.value == "activation"
        assert elements["Probed layer"].gui_handle.value == 2
        assert list(elements["Precision"].gui_handle.options) == ["fp32", "bf16", "fp16"]

        elements["Fine samples"].gui_handle.value = 1
        elements["Fine samples"].cb_hook(elements["Fine samples"])
        assert elements["Fine samples"].gui_handle.value == 0
        assert model.config.fine_samples == 0
        assert elements["Status"].gui_handle.value.startswith("rejected: --fine-samples must be 0")
        time.sleep(viewer.SNAP_BACK_RESEND_S + 0.25)  # the value is sent again, still the setting's
        assert elements["Fine samples"].gui_handle.value == 0

        model.get_outputs_for_camera_ray_bundle(camera_bundle(width=7, height=5))
        assert elements["Last frame"].gui_handle.value.endswith(" ms, 7x5 px")
        assert elements["Rendered with"].gui_handle.value == "activation, fp32, fast kernels"
        server.flush()
        assert not set(rerenders) & set(READOUTS)
    finally:
        server.stop()
