#!/usr/bin/env python
"""``ns-internals-render``: nerfstudio's ``ns-render``, ``ns-eval`` and ``ns-viewer`` with activation-informed sampling.

Each sub-command is nerfstudio's own (``camera-path``, ``interpolate``, ``spiral`` from ``ns-render``;
``eval`` is ``ns-eval``; ``viewer`` is ``ns-viewer``) with the same flags, plus the inference
setting: ``--inference-sampler activation`` (the default here) or ``stock``, ``--layer``, ``--fct``,
``--upsample``, ``--gate``, ``--probe-samples``, ``--in-box``, ``--keep-near-plane``, ``--precision``,
``--kernels`` and ``--auto``. The run is loaded by :func:`nerfinternals.loading.load_pipeline` (strict checkpoint
keys; stock vanilla-nerf / mipnerf / nerfacto runs too), the model is switched to the setting, and
nerfstudio's code renders, scores or serves it. As in ``ns-render``, boolean flags take a value
(``--upsample True``).

Outputs are written next to their final place and moved there when complete: an interrupted (also
by SIGTERM / SIGINT) or failed render leaves nothing behind, staging folders of crashed runs are
removed by the next run, and an existing output is only replaced with ``--overwrite True``. ``--output-format images`` needs no ffmpeg; ``video`` uses ffmpeg from PATH or
the one the ``imageio-ffmpeg`` package ships. At the end the time per frame is printed (synchronised
on CUDA).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro
from nerfstudio.scripts import eval as ns_eval
from nerfstudio.scripts import render as ns_render
from nerfstudio.scripts.viewer import run_viewer as ns_viewer
from nerfstudio.utils import install_checks
from nerfstudio.utils.rich_utils import CONSOLE as NS_CONSOLE
from rich.console import Console

from nerfinternals import estimators, kernels
from nerfinternals.common import fct_names, parse_cli, timed, write_json
from nerfinternals.estimators import RenderOptions
from nerfinternals.kernels import Kernels
from nerfinternals.loading import InputError, load_pipeline
from nerfinternals.models.inference import SAMPLERS, render_kwargs
from nerfinternals.utils import ALLOCATORS, use_allocator

CONSOLE = Console(width=120)


@dataclass
class InferenceOptions:
    """The inference setting, added to each nerfstudio sub-command."""

    inference_sampler: Literal[SAMPLERS] = "activation"
    """activation: skip the coarse (first proposal) network, sample from its layer-l activations (the paper); grid: look its density up in a post hoc --grid-resolution^3 grid instead (filled once when the run loads); grid-all: nerfacto without any proposal network, every stage from a grid of the field's density (NeRF / Mip-NeRF: the same as grid); hybrid: activations place the samples, the grid finds empty rays (--skip-empty True); stock: the model's own sampler (what ns-render does)."""
    layer: int = 1
    """Probed layer, 0-based (1 = the paper's l=2)."""
    fct: int = 1
    """Activation -> density transform: 0 = std, 1 = std_half, 2 = std_half_sq."""
    upsample: bool = False
    """Probe every 2nd pixel per axis with half the samples and upsample the activations."""
    gate: bool = False
    """Render only pixels whose mean activation is below the image mean (the paper's Fig. 3); others get the background."""
    probe_samples: int = 0
    """Samples per ray the probe evaluates (0: as many as the replaced network; fewer are interpolated along the ray)."""
    in_box: bool = False
    """Place the uniform samples inside the scene box and skip rays that miss it (bounded scenes)."""
    fine_samples: int = 0
    """Final-pass samples per ray (0: the model's own). NeRF: K importance samples without the uniform originals (stock 64 + 128); Mip-NeRF: K (stock 128); nerfacto: K field samples (stock 48), the later proposal stage scaled by K/48. Applies to every sampler."""
    skip_empty: bool = False
    """Rays whose estimate accumulates less than --empty-threshold get the background colour without a final pass."""
    empty_threshold: float = 1e-3
    """--skip-empty: accumulation below which a ray is empty (0: none is)."""
    grid_resolution: int = 64
    """Cells per axis of the density grid (grid, grid-all, hybrid)."""
    initial_samples: int = 0
    """Uniform samples per ray the grid weighs (grid, grid-all; 0: as many as the replaced network)."""
    keep_near_plane: bool = False
    """Sample from the training near plane (nerfstudio resets it to 0 when not training); also for --inference-sampler stock."""
    precision: Literal["fp32", "tf32", "bf16", "fp16"] = "fp32"
    """fp32 (exact), tf32 (CUDA only), bf16 / fp16 (autocast). On this project's CPU bf16 is the fastest (docs/rendering.md, "Precision")."""
    kernels: Kernels = "fast"
    """fast: nerfstudio's scene contraction and torch hash encoding with the same bits in less time; compiled: those through torch.compile (compiled when the run loads, the time printed; where it cannot compile, one warning and fast); stock: nerfstudio's own, as shipped (docs/rendering.md, "Kernels")."""
    auto: bool = False
    """Use the configuration `eval.py --auto` chose for this run (fastest within --max-psnr-drop of stock on its val images); chosen now (at full resolution) when no record applies. Replaces --inference-sampler/--fine-samples/--skip-empty/--layer/--fct/--upsample/--gate/--probe-samples/--in-box."""
    max_psnr_drop: float = 0.1
    """--auto: PSNR budget in dB against the stock sampler on the val images."""
    overwrite: bool = False
    """Replace an existing output."""
    device: str | None = None
    """Torch device (default: cuda if available, else cpu)."""
    allocator: Literal[ALLOCATORS] = "steady"
    """CPU memory: "steady" keeps freed memory for reuse (stock nerfacto rendered up to 2x faster on the project's CPU so), "default" leaves glibc as it starts (docs/rendering.md, "Memory allocation on the CPU")."""

    def settings(self) -> dict:
        """The model's inference setting (fields of ActivationInferenceConfig) these flags ask for."""
        (fct,) = fct_names([self.fct])
        return {
            "inference_sampler": self.inference_sampler,
            "probe_layer": self.layer,
            "probe_fct": fct,
            "probe_upsample": self.upsample,
            "probe_gate": self.gate,
            "probe_samples": self.probe_samples,
            "probe_in_box": self.in_box,
            "fine_samples": self.fine_samples,
            "skip_empty": self.skip_empty,
            "empty_threshold": self.empty_threshold,
            "grid_resolution": self.grid_resolution,
            "initial_samples": self.initial_samples,
            "keep_near_plane": self.keep_near_plane,
            "precision": self.precision,
            "kernels": self.kernels,
        }


class FrameTimes:
    """Synchronised wall time of every ``get_outputs_for_camera`` call of a model, and its output names."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.output_names: list[str] = []

    def attach(self, model) -> None:
        render = model.get_outputs_for_camera

        def timed_render(*args, **kwargs):
            outputs, t = timed(model.device, lambda: render(*args, **kwargs))
            self.seconds.append(t)
            self.output_names = list(outputs)
            return outputs

        model.get_outputs_for_camera = timed_render

    def summary(self) -> str:
        s = self.seconds
        if not s:
            return "no frames rendered"
        steady = s[1:] or s
        return (
            f"{len(s)} frame(s), {statistics.mean(steady):.3f} s per frame "
            f"(median {statistics.median(steady):.3f} s{', first ' + format(s[0], '.3f') + ' s' if len(s) > 1 else ''})"
        )


@contextlib.contextmanager
def _replaced(owner: object, name: str, value: object) -> Iterator[None]:
    """``owner.name = value`` for the duration of the block."""
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def describe(settings: dict) -> str:
    """One line naming an inference setting."""
    text = estimators.description(RenderOptions(**render_kwargs(settings)))
    if settings["fine_samples"]:
        text += f", {settings['fine_samples']} fine samples"
    if settings["skip_empty"]:
        text += f", empty rays skipped (< {settings['empty_threshold']:g})"
    if settings["keep_near_plane"]:
        text += ", training near plane"
    return f"{text}, {settings['precision']}, {settings['kernels']} kernels"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        pass
    return True


class _Staging:
    """Outputs written under a hidden folder ``.<name>.partial-<pid>-XXXX`` beside their final place,
    moved there on success."""

    def __init__(self, finals: list[Path], overwrite: bool) -> None:
        self.finals = finals
        self.overwrite = overwrite
        self.folders: list[Path] = []
        self.refuse_existing("exists")

    def refuse_existing(self, what: str) -> None:
        """InputError if an output is there (other than an empty folder) and ``overwrite`` is off."""
        for final in self.finals:
            if final.exists() and not (final.is_dir() and not any(final.iterdir())) and not self.overwrite:
                raise InputError(f"{final} {what}: pass --overwrite True or choose another --output-path")

    def staged(self, final: Path) -> Path:
        """Where to write ``final`` until it is complete; removes staging folders of ``final`` left by
        processes that are gone."""
        final.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{final.name}.partial-"
        for entry in final.parent.iterdir():
            pid = entry.name[len(prefix) :].split("-")[0] if entry.name.startswith(prefix) else ""
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(dir=final.parent, prefix=f"{prefix}{os.getpid()}-"))
        self.folders.append(folder)
        return folder / final.name

    def commit(self) -> None:
        """Move the staged outputs into place. A file replaces a file atomically; otherwise the old output is
        first renamed into the staging folder (deleted with it by :meth:`cleanup`), so it is only deleted
        once the new one is in place."""
        self.refuse_existing("was created while rendering")
        for folder, final in zip(self.folders, self.finals, strict=True):
            staged = folder / final.name
            if staged.exists():
                if (final.is_dir() or staged.is_dir()) and (final.exists() or final.is_symlink()):
                    final.replace(folder / f".{final.name}.replaced")
                staged.replace(final)

    def cleanup(self) -> None:
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)


class _Interrupted(BaseException):
    """SIGTERM or SIGINT during :func:`_run`: unwinds through its cleanup."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """Within ``with``, SIGTERM and SIGINT raise :class:`_Interrupted` (installed in the main thread only;
    the previous handlers come back after); within :meth:`held`, they wait until its end. Leaving on
    such a signal prints one line and exits with 128 + its number, as the shell reports a signal."""

    def __init__(self) -> None:
        self.previous: dict = {}
        self.holding = False
        self.pending: int | None = None

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, kind, err, tb) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if isinstance(err, _Interrupted):
            print(f"interrupted by {signal.Signals(err.signum).name}", file=sys.stderr)
            raise SystemExit(128 + err.signum) from None

    def _handle(self, signum: int, frame) -> None:
        if self.holding:
            self.pending = signum
        else:
            raise _Interrupted(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            pending, self.pending = self.pending, None
            if pending is not None:
                raise _Interrupted(pending)


class _SettingRun:
    """Load the run with the inference setting when nerfstudio's code asks ``eval_setup`` for it."""

    def __init__(self, options) -> None:
        self.options = options  # an InferenceOptions sub-command (it has nerfstudio's load_config)
        self.load_config = Path(options.load_config)
        self.times = FrameTimes()
        self.model = None

    def settings(self) -> dict:
        if self.options.auto:
            from nerfinternals.auto import auto_settings

            chosen = auto_settings(
                self.load_config,
                self.options.max_psnr_drop,
                device=self.options.device,
                precision=self.options.precision,
                keep_near_plane=self.options.keep_near_plane,
                kernels=self.options.kernels,
                console=CONSOLE,
            )
            return {**self.options.settings(), **chosen}
        return self.options.settings()

    def eval_setup(
        self, config_path, eval_num_rays_per_chunk=None, test_mode="test", update_config_callback=None
    ):
        settings = self.settings()
        use_allocator(self.options.allocator)
        config, pipeline, ckpt, step = load_pipeline(
            config_path, device=self.options.device, test_mode=test_mode
        )
        if update_config_callback is not None:
            config = update_config_callback(config)
        model = pipeline.model
        if eval_num_rays_per_chunk:
            model.config.eval_num_rays_per_chunk = eval_num_rays_per_chunk
        try:
            model.set_inference(**settings)
        except ValueError as err:
            raise InputError(str(err)) from None
        self.times.attach(model)
        self.model = model
        CONSOLE.print(
            f"{config.method_name} ({type(model).__name__}, step {step}) on {model.device}: {describe(settings)}"
        )
        if (seconds := kernels.compile_model(model, model.device, settings["kernels"])) is not None:
            CONSOLE.print(f"compiled in {seconds:.1f} s")
        grid = model.grid_of(render_kwargs(settings))
        if grid is not None:
            grid = grid.describe()
            CONSOLE.print(
                f"density grid {grid['resolution']}^3 filled in {grid['fill_seconds']:.2f} s "
                f"({grid['evaluations']} evaluations of the network, {grid['megabytes']:.1f} MB)"
            )
        return config, pipeline, ckpt, step

    @contextlib.contextmanager
    def patched(self, module) -> Iterator[None]:
        """nerfstudio's ``module`` loads through :meth:`eval_setup`; its own console stays quiet (its
        messages name the staging paths); the progress bars stay."""
        with _replaced(module, "eval_setup", self.eval_setup), _replaced(NS_CONSOLE, "quiet", True):
            yield


def _ffmpeg() -> str | None:
    """An ffmpeg executable: on PATH, or the one the imageio-ffmpeg package ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


def _run(
    cmd, nerfstudio_main: Callable[[_SettingRun], None], module, finals: list[Path], stage
) -> _SettingRun:
    """``nerfstudio_main(run)`` with the run loaded in the setting; its outputs ``finals`` are written where
    ``stage(staged paths)`` points nerfstudio and moved into place when it returns."""
    staging = _Staging(finals, cmd.overwrite)
    run = _SettingRun(cmd)
    with _Signals() as signals:
        try:
            stage([staging.staged(final) for final in finals])
            with run.patched(module):
                try:
                    nerfstudio_main(run)
                except SystemExit as exit_:
                    # nerfstudio exits on an output name the model does not render
                    names = getattr(cmd, "rendered_output_names", None) or []
                    missing = [n for n in names if n not in run.times.output_names and n != "rgba"]
                    if exit_.code and missing and run.times.output_names:
                        raise InputError(
                            f"--rendered-output-names {missing[0]} is not an output of this model: choose from "
                            f"{', '.join(run.times.output_names)}"
                        ) from None
                    raise
            with signals.held():
                staging.commit()
        finally:
            with signals.held():
                staging.cleanup()
    return run


class _RenderCommand(InferenceOptions):
    """What ``camera-path``, ``interpolate`` and ``spiral`` share."""

    def check(self) -> None:
        if self.output_format == "video":
            ffmpeg = _ffmpeg()
            if ffmpeg is None:
                raise InputError(
                    "--output-format video needs ffmpeg: install it (apt install ffmpeg, or pip install "
                    "imageio-ffmpeg), or write frames with --output-format images"
                )
            import mediapy

            mediapy.set_ffmpeg(ffmpeg)

    def main(self) -> None:
        self.check()
        target = self.output_path
        final = target if self.output_format == "video" else target.parent / target.stem

        def stage(paths: list[Path]) -> None:
            staged = paths[0]
            self.output_path = (
                staged if self.output_format == "video" else staged.parent / (staged.name + target.suffix)
            )

        with _replaced(install_checks, "check_ffmpeg_installed", lambda: None):
            try:
                run = _run(self, lambda _: super(_RenderCommand, self).main(), ns_render, [final], stage)
            finally:
                self.output_path = target
        CONSOLE.print(f"{run.times.summary()} -> {final}")


@dataclass
class CameraPath(_RenderCommand, ns_render.RenderCameraPath):
    """Render a camera path made in the viewer or the Blender add-on (ns-render camera-path)."""

    def check(self) -> None:
        path = Path(self.camera_path_filename)
        if not path.is_file():
            raise InputError(f"camera path not found: {path}")
        try:
            data = json.loads(path.read_text())
            cameras = ns_render.get_path_from_json(data)
            float(data["seconds"])
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as err:
            raise InputError(f"not a camera path file: {path} ({type(err).__name__}: {err})") from None
        stereo = (ns_render.CameraType.OMNIDIRECTIONALSTEREO_L.value, ns_render.CameraType.VR180_L.value)
        if int(cameras.camera_type[0]) in stereo:
            raise InputError(
                "omnidirectional-stereo and VR180 camera paths are not supported here: use ns-render"
            )
        super().check()


@dataclass
class Interpolate(_RenderCommand, ns_render.RenderInterpolated):
    """Render a path that interpolates between the eval (or train) cameras (ns-render interpolate)."""

    def check(self) -> None:
        if self.interpolation_steps < 1:
            raise InputError(f"--interpolation-steps must be at least 1, got {self.interpolation_steps}")
        super().check()


@dataclass
class Spiral(_RenderCommand, ns_render.SpiralRender):
    """Render a spiral around the first eval camera (ns-render spiral)."""

    def main(self) -> None:
        with _replaced(ns_render, "get_spiral_path", _spiral_path_float32):
            super().main()


def _spiral_path_float32(camera, *args, **kwargs):
    """nerfstudio's ``get_spiral_path`` from a float32 copy of ``camera``: with the float64 focal lengths
    nerfstudio's eval dataloader gives, stock ``ns-render spiral`` fails in ``torch.cross``."""
    camera = camera[:]  # a copy to cast, not the dataloader's camera
    for name in ("fx", "fy", "cx", "cy", "camera_to_worlds"):
        setattr(camera, name, getattr(camera, name).float())
    return _STOCK_SPIRAL_PATH(camera, *args, **kwargs)


_STOCK_SPIRAL_PATH = ns_render.get_spiral_path


@dataclass
class Eval(InferenceOptions, ns_eval.ComputePSNR):
    """Score the run's eval images with ns-eval, writing its JSON (plus the inference setting and render times)."""

    def main(self) -> None:
        if self.output_path.suffix != ".json":
            raise InputError(f"--output-path must end in .json, got {self.output_path}")
        target, images = self.output_path, self.render_output_path
        finals = [target] + ([images] if images is not None else [])

        def stage(paths: list[Path]) -> None:
            self.output_path = paths[0]
            if images is not None:
                self.render_output_path = paths[1]

        def score_then_annotate(run: _SettingRun) -> None:
            ns_eval.ComputePSNR.main(self)
            result = json.loads(self.output_path.read_text())
            result["inference"] = run.model.inference_settings()
            result["render_seconds_per_image"] = run.times.seconds
            write_json(self.output_path, result)

        try:
            run = _run(self, score_then_annotate, ns_eval, finals, stage)
        finally:
            self.output_path, self.render_output_path = target, images
        CONSOLE.print(f"{run.times.summary()} -> {target}")


@dataclass
class Viewer(InferenceOptions, ns_viewer.RunViewer):
    """Serve the run in nerfstudio's viewer (ns-viewer), rendering with the inference setting."""

    def main(self) -> None:
        with _SettingRun(self).patched(ns_viewer):
            super().main()


Commands = tyro.conf.FlagConversionOff[
    Annotated[CameraPath, tyro.conf.subcommand(name="camera-path")]
    | Annotated[Interpolate, tyro.conf.subcommand(name="interpolate")]
    | Annotated[Spiral, tyro.conf.subcommand(name="spiral")]
    | Annotated[Eval, tyro.conf.subcommand(name="eval")]
    | Annotated[Viewer, tyro.conf.subcommand(name="viewer")]
]


def entrypoint() -> None:
    """Console script entry point (``ns-internals-render``)."""
    cmd = parse_cli(Commands)
    try:
        cmd.main()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    entrypoint()
