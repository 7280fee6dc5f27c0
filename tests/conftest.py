"""Shared fixtures: tiny models, an offline torch hub, a stand-in AlexNet weights file."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

warnings.filterwarnings("ignore", category=FutureWarning)

# No test downloads the AlexNet weights (nerfinternals.metrics honours this; CLIs the tests start
# inherit it): offline CI never waits on the network. Tests of the download unset it themselves.
os.environ["NERFINTERNALS_NO_DOWNLOAD"] = "1"


@pytest.fixture()
def empty_torch_home(tmp_path, monkeypatch):
    """TORCH_HOME pointing at an empty folder: nothing to load, nothing may be downloaded."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture()
def standin_alexnet_home(tmp_path, monkeypatch):
    """TORCH_HOME holding a randomly initialised AlexNet under the real weights' file name.

    Lets stock torchmetrics LPIPS be constructed offline (torchvision loads a cached file without
    downloading); the numbers it gives are not meaningful LPIPS.
    """
    import torchvision

    from nerfinternals.metrics import alexnet_weights_path

    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    path = alexnet_weights_path()
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return home


@pytest.fixture(scope="module")
def models():
    """kind -> a small in-process model (tests.runs.build_model), built once per test module."""
    from tests.runs import build_model

    cache = {}

    def get(kind: str):
        if kind not in cache:
            cache[kind] = build_model(kind)
        return cache[kind]

    return get
