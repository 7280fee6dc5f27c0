"""Load a trained run (ours or stock vanilla-nerf / mipnerf / nerfacto) for activation-informed rendering.

Like nerfstudio's ``eval_setup``, with the differences a user of this tool needs:
- stock configs are pointed at our model classes (same state_dict keys), so stock runs load as they are;
- the checkpoint directory is the ``nerfstudio_models`` folder beside ``config.yml`` (where ns-train
  puts it), not the path stored in the config, so a run folder can be moved or copied;
- checkpoints are read with ``weights_only=False`` (nerfacto's scheduler state holds numpy scalars,
  which torch >= 2.6 refuses by default): only load runs you trust;
- the state_dict keys are compared before loading and any mismatch is an error (nerfstudio falls
  back to a partial load, silently leaving random weights);
- every failure is an :class:`InputError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import yaml
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager
from nerfstudio.data.datamanagers.parallel_datamanager import ParallelDataManagerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.models.mipnerf import MipNerfModel
from nerfstudio.models.nerfacto import NerfactoModel
from nerfstudio.models.vanilla_nerf import NeRFModel
from nerfstudio.pipelines.base_pipeline import Pipeline

from nerfinternals.models import (
    ActivationMipNerfModel,
    ActivationMipNerfModelConfig,
    ActivationNerfactoModel,
    ActivationNerfactoModelConfig,
    ActivationNeRFModel,
    ActivationNeRFModelConfig,
)

SUPPORTED_METHODS = (
    "activation-nerf",
    "activation-mipnerf",
    "activation-nerfacto",
    "vanilla-nerf",
    "mipnerf",
    "nerfacto",
)


class InputError(Exception):
    """Bad user input: reported as one line, never as a traceback."""


def _convert(stock_config, target_cls, **extra):
    """A ``target_cls`` config carrying every field of ``stock_config`` (plus ``extra``)."""
    names = {f.name for f in dataclasses.fields(target_cls)} - {"_target"}
    values = {
        f.name: getattr(stock_config, f.name) for f in dataclasses.fields(stock_config) if f.name in names
    }
    return target_cls(**values, **extra)


# stock model class -> (our model class, how to convert its config)
_STOCK = {
    # stock NeRF / Mip-NeRF sample [near, far] of collider_params whatever the data: keep it so
    NeRFModel: (
        ActivationNeRFModel,
        lambda c: _convert(c, ActivationNeRFModelConfig, near_far_from_data=False),
    ),
    MipNerfModel: (
        ActivationMipNerfModel,
        lambda c: _convert(c, ActivationMipNerfModelConfig, near_far_from_data=False),
    ),
    NerfactoModel: (
        ActivationNerfactoModel,
        lambda c: _convert(c, ActivationNerfactoModelConfig, proposal_field="hash"),
    ),
}
_OURS = (ActivationNeRFModel, ActivationMipNerfModel, ActivationNerfactoModel)


def read_config(config_path: Path) -> TrainerConfig:
    """Read a run's ``config.yml`` (PyYAML full loader: trusted files only)."""
    config_path = Path(config_path)
    if not config_path.is_file():
        raise InputError(f"config not found: {config_path}")
    try:
        config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    except Exception as err:  # any parse or construction failure means "not a config we can read"
        raise InputError(f"not a nerfstudio config: {config_path} ({type(err).__name__}: {err})") from None
    if not isinstance(config, TrainerConfig):
        raise InputError(f"not a nerfstudio config: {config_path}")
    return config


def to_activation_config(config: TrainerConfig) -> TrainerConfig:
    """Point a run's config at our model class; error for methods other than the supported ones."""
    model_config = config.pipeline.model
    target = getattr(model_config, "_target", None)
    if target in _OURS:
        pass
    elif target in _STOCK:
        config.pipeline.model = _STOCK[target][1](model_config)
    else:
        name = config.method_name or getattr(target, "__name__", "?")
        raise InputError(f"unsupported method {name!r}: supported are {', '.join(SUPPORTED_METHODS)}")
    if isinstance(config.pipeline.datamanager, ParallelDataManagerConfig):
        # Evaluation needs no background workers (they also require a __main__ guard in scripts).
        config.pipeline.datamanager._target = VanillaDataManager
    return config


def checkpoint_path(config_path: Path, config: TrainerConfig) -> Path:
    """The latest ``step-*.ckpt`` of the run."""
    ckpt_dir = Path(config_path).parent / config.relative_model_dir
    if not ckpt_dir.is_dir():
        raise InputError(f"checkpoint directory not found: {ckpt_dir}")
    ckpts = sorted(ckpt_dir.glob("step-*.ckpt"))
    if not ckpts:
        raise InputError(f"no checkpoint (step-*.ckpt) in {ckpt_dir}")
    return ckpts[-1]


def _strip_ddp(state: dict) -> dict:
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}


def load_pipeline(
    config_path: Path, device: str | torch.device | None = None, test_mode: str = "test"
) -> tuple[TrainerConfig, Pipeline, Path, int]:
    """Build the run's pipeline with our model class and load its latest checkpoint, strictly.

    Returns:
        (config, pipeline in eval mode, checkpoint path, step)
    """
    config_path = Path(config_path)
    config = to_activation_config(read_config(config_path))
    ckpt = checkpoint_path(config_path, config)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        pipeline = config.pipeline.setup(device=device, test_mode=test_mode)
    except Exception as err:  # dataparsers fail in many ways on missing or malformed data
        data = config.pipeline.datamanager.data or config.pipeline.datamanager.dataparser.data
        raise InputError(
            f"could not set up the run's data from {data} ({type(err).__name__}: {err})"
        ) from None
    pipeline.eval()

    loaded = torch.load(ckpt, map_location="cpu", weights_only=False)  # trusted files only (see module doc)
    state = _strip_ddp(loaded["pipeline"])
    expected = set(pipeline.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    # Our LPIPS module supplies its own weights; checkpoints may or may not carry them.
    missing = [k for k in missing if ".lpips." not in k]
    if missing or unexpected:
        raise InputError(
            f"checkpoint {ckpt} does not fit {type(pipeline.model).__name__}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    pipeline.load_pipeline(state, loaded["step"])
    # Pixels the gate skips take the dataset's background where the model has no fixed one (nerfacto).
    dataset = getattr(pipeline.datamanager, "eval_dataset", None)
    alpha_color = getattr(getattr(dataset, "_dataparser_outputs", None), "alpha_color", None)
    if alpha_color is not None:
        pipeline.model.gate_background = alpha_color
    return config, pipeline, ckpt, int(loaded["step"])
