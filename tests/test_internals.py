"""The method's pure functions (nerfinternals.internals) against their equations."""

from __future__ import annotations

import pytest
import torch
from nerfstudio.field_components.mlp import MLP
from torch import nn

from nerfinternals import internals
from tests.runs import ray_samples


def _mlp(skips=(2,), out_activation: nn.Module | None = None, num_layers=5):
    out_activation = nn.ReLU() if out_activation is None else out_activation
    torch.manual_seed(0)
    return MLP(
        in_dim=7, num_layers=num_layers, layer_width=16, skip_connections=skips, out_activation=out_activation
    )


@pytest.mark.parametrize("layer", range(5))
def test_truncated_probe_equals_hooked_full_forward(layer):
    mlp = _mlp()
    x = torch.randn(4, 9, 7)
    captured = {}
    # Hook the Linear layer (not the shared ReLU module) and apply the activation as MLP does.
    handle = mlp.layers[layer].register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    mlp(x)
    handle.remove()
    expected = torch.relu(captured["out"])
    assert torch.allclose(internals.mlp_layer_output(mlp, x, layer), expected, atol=1e-6)
    assert torch.allclose(internals.activation_feature(mlp, x, layer), expected.mean(-1), atol=1e-6)


def test_truncated_probe_runs_only_layers_up_to_l():
    mlp = _mlp()
    called = []
    for i, lin in enumerate(mlp.layers):
        lin.register_forward_hook(lambda m, inp, out, i=i: called.append(i))
    internals.mlp_layer_output(mlp, torch.randn(3, 7), 1)
    assert called == [0, 1]


def test_probe_layer_range_excludes_unactivated_output_layer():
    mlp = MLP(in_dim=7, num_layers=4, layer_width=16, out_activation=None)
    assert internals.num_probe_layers(mlp) == 3
    with pytest.raises(ValueError, match=r"valid layers are 0\.\.2"):
        internals.mlp_layer_output(mlp, torch.randn(2, 7), 3)


def test_transforms_match_equations():
    v = torch.tensor([[1.0, 2.0, 3.0, 10.0], [0.0, 0.0, 4.0, 4.0]])
    mu = v.mean(-1, keepdim=True)
    s = v.std(-1, keepdim=True)  # unbiased, as torch.std
    expected = {
        "std": torch.clamp((mu - s) - v, min=0),
        "std_half": torch.clamp((mu - s / 2) - v, min=0),
        "std_half_sq": torch.clamp((mu - s / 2) - v, min=0) ** 2,
    }
    for name, exp in expected.items():
        assert torch.allclose(internals.density_from_activation(v, name), exp)
    # The minimum of the first ray is the only sample below mu - s/2 there.
    d = internals.density_from_activation(v, "std_half")
    assert d[0, 0] > 0 and (d[0, 1:] == 0).all()
    assert internals.FCT_NAMES == ("std", "std_half", "std_half_sq")
    with pytest.raises(ValueError, match="unknown transform"):
        internals.density_from_activation(v, "nope")


def test_flat_activation_gives_finite_uniform_weights():
    samples = ray_samples(2, 8)
    v = torch.stack([torch.full((8,), 0.3), torch.linspace(1.0, 0.0, 8)])
    for fct in internals.FCT_NAMES:
        w = internals.weights_from_density(samples, internals.density_from_activation(v, fct))
        assert w.shape == (2, 8, 1)
        assert torch.isfinite(w).all()
        assert torch.allclose(w.sum(dim=-2), torch.ones(2, 1))
        assert torch.allclose(w[0, :, 0], torch.full((8,), 1 / 8))


def test_weights_peak_at_activation_minimum():
    samples = ray_samples(1, 16)
    v = torch.ones(1, 16)
    v[0, 9] = -5.0
    w = internals.weights_from_density(samples, internals.density_from_activation(v, "std"))
    assert int(w[0, :, 0].argmax()) == 9


@pytest.mark.parametrize("size", [(5, 7, 8), (6, 4, 9), (1, 3, 2)])
def test_upsample_nearest_any_shape(size):
    H, W, N = size
    small = torch.randn((H + 1) // 2, (W + 1) // 2, (N + 1) // 2)
    up = internals.upsample_nearest(small, size)
    assert up.shape == size
    for i in range(H):
        for j in range(W):
            for k in range(N):
                kk = min(int((k + 0.5) * small.shape[2] / N), small.shape[2] - 1)
                assert up[i, j, k] == small[i // 2, j // 2, kk]


def test_macs_hand_count():
    mlp = MLP(in_dim=3, num_layers=3, layer_width=4, out_dim=2)
    # Linear 3->4, 4->4, 4->2
    assert internals.linear_macs(mlp) == 3 * 4 + 4 * 4 + 4 * 2
    assert internals.probe_macs(mlp, 0) == 12
    assert internals.probe_macs(mlp, 1) == 12 + 16
