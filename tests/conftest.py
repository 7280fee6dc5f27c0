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


@pytest.fixture(scope="session")
def standin_alexnet_file(tmp_path_factory):
    """A randomly initialised AlexNet state dict (234 MB), written once per test session.

    Tests link it into their own torch hubs rather than each writing a copy of their own.
    """
    import torchvision

    path = tmp_path_factory.mktemp("standin_alexnet") / "alexnet-owt-7be5be79.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path


@pytest.fixture()
def standin_alexnet_home(tmp_path, monkeypatch, standin_alexnet_file):
    """TORCH_HOME holding a randomly initialised AlexNet under the real weights' file name.

    Lets stock torchmetrics LPIPS be constructed offline (torchvision loads a cached file without
    downloading); the numbers it gives are not meaningful LPIPS.
    """
    from nerfinternals.metrics import alexnet_weights_path
    from tests.runs import link_standin_alexnet

    home = link_standin_alexnet(tmp_path / "torch_home", standin_alexnet_file)
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert alexnet_weights_path().is_file()
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
