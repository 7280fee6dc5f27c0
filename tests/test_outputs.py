"""Outputs are complete or absent: file modes of atomic writes, and ns-internals-render's staging (replacing
an output, SIGTERM / SIGINT while rendering, staging folders of crashed runs, outputs made meanwhile)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from nerfinternals import render
from nerfinternals.common import write_json
from nerfinternals.loading import InputError
from tests.runs import EVAL_SCRIPT, REPO

BIN = Path(sys.executable).parent
RUN = Path("outputs/demo/spheres/activation-nerf/run/config.yml")  # relative to the repository root
shipped = pytest.mark.skipif(not (REPO / RUN).is_file(), reason="no shipped activation-nerf run")


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def scene():
    from nerfinternals.demo import DEMO_SCENE, ensure_scene

    return ensure_scene(REPO / DEMO_SCENE)


# ---- atomic writes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"]
)
def test_written_files_get_the_mode_open_gives(tmp_path, mask, expected):
    with umask(mask):
        write_json(tmp_path / "a.json", {"x": 1})
        with open(tmp_path / "plain.json", "w") as f:  # what the umask gives any new file
            f.write("{}")
    assert mode(tmp_path / "a.json") == mode(tmp_path / "plain.json") == expected
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "plain.json"]


@shipped
def test_eval_outputs_are_readable_by_others_under_umask_022(scene, tmp_path):
    out = tmp_path / "eval"
    args = ["--load-config", str(RUN), "--layer", "1", "--fct", "1", "--output-dir", str(out)]
    args += ["--max-images", "1", "--device", "cpu"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TORCH_HOME": str(tmp_path / "torch_home")}
    result = subprocess.run(
        [sys.executable, EVAL_SCRIPT, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert out / "summary.json" in files and any(p.suffix == ".png" for p in files)
    assert {p.name: oct(mode(p)) for p in files if mode(p) != 0o644} == {}


# ---- staging of ns-internals-render --------------------------------------------------------------
def _write(path: Path, text: str, folder: bool) -> None:
    if folder:
        path.mkdir()
        (path / "00000.png").write_text(text)
    else:
        path.write_text(text)


def _content(path: Path) -> str | None:
    file = path / "00000.png" if path.is_dir() else path
    return file.read_text() if file.is_file() else None


@pytest.mark.parametrize("folder", [True, False], ids=["frames", "video"])
def test_replacing_an_output_deletes_the_old_one_only_once_the_new_one_is_in_place(
    tmp_path, monkeypatch, folder
):
    final = tmp_path / ("frames" if folder else "render.mp4")
    _write(final, "old", folder)
    staging = render._Staging([final], overwrite=True)
    _write(staging.staged(final), "new", folder)
    moments = []

    def observe() -> None:
        # every complete copy of either output on disk, and what the final path holds
        copies = [_content(p) for p in tmp_path.rglob("*") if p.name in (final.name, "00000.png")]
        moments.append((set(copies) - {None}, _content(final)))

    def observed(fn):
        def wrapper(*args, **kwargs):
            observe()
            result = fn(*args, **kwargs)
            observe()
            return result

        return wrapper

    monkeypatch.setattr(Path, "replace", observed(Path.replace))
    monkeypatch.setattr(os, "replace", observed(os.replace))
    monkeypatch.setattr(shutil, "rmtree", observed(shutil.rmtree))
    monkeypatch.setattr(os, "unlink", observed(os.unlink))
    staging.commit()
    staging.cleanup()
    assert moments, "the commit was not observed"
    for copies, at_final in moments:
        assert at_final == "new" or ({"old", "new"} <= copies and at_final in ("old", None)), moments
    assert _content(final) == "new" and sorted(p.name for p in tmp_path.iterdir()) == [final.name]


def test_an_output_made_while_rendering_is_not_replaced_without_overwrite(tmp_path):
    final = tmp_path / "frames"
    staging = render._Staging([final], overwrite=False)  # nothing there yet
    _write(staging.staged(final), "ours", folder=True)
    _write(final, "theirs", folder=True)  # someone else, meanwhile
    with pytest.raises(InputError) as err:
        staging.commit()
    assert str(err.value) == (
        f"{final} was created while rendering: pass --overwrite True or choose another --output-path"
    )
    staging.cleanup()
    assert _content(final) == "theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_staging_folders_of_processes_that_are_gone_are_removed(tmp_path):
    final = tmp_path / "frames"
    dead = tmp_path / ".frames.partial-99999999-abc"  # above any pid_max: no such process
    live = tmp_path / f".frames.partial-{os.getppid()}-def"  # pytest's parent: alive
    other = tmp_path / ".video.partial-99999999-abc"  # another output's
    for folder in (dead, live, other):
        (folder / "frames").mkdir(parents=True)
    staging = render._Staging([final], overwrite=False)
    staged = staging.staged(final)
    assert staged.parent.name.startswith(f".frames.partial-{os.getpid()}-")
    assert not dead.exists() and live.is_dir() and other.is_dir()
    staging.cleanup()


def _fake_run(tmp_path: Path, during_render=None):
    """``render._run`` with a stand-in for nerfstudio that writes the staged frames folder."""
    final = tmp_path / "frames"
    staged: list[Path] = []

    def nerfstudio_main(_run) -> None:
        _write(staged[0], "new", folder=True)
        if during_render is not None:
            during_render()

    cmd = SimpleNamespace(overwrite=True, load_config="config.yml")
    module = SimpleNamespace(eval_setup=None)
    render._run(cmd, nerfstudio_main, module, [final], staged.extend)
    return final


@contextlib.contextmanager
def fail_on(*signums):
    """Signals that reach these handlers (not the renderer's) fail the test instead of ending pytest."""

    def unhandled(signum, frame):
        pytest.fail(f"{signal.Signals(signum).name} reached the caller's handler")

    before = {s: signal.signal(s, unhandled) for s in signums}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_rendering_leaves_nothing_and_restores_the_handlers(tmp_path, capsys, signum):
    def killed() -> None:
        os.kill(os.getpid(), signum)
        time.sleep(30)  # the handler interrupts this
        pytest.fail("the signal did not interrupt the render")

    with fail_on(signal.SIGTERM, signal.SIGINT):
        before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        with pytest.raises(SystemExit) as exit_:
            _fake_run(tmp_path, killed)
        assert {s: signal.getsignal(s) for s in before} == before
    assert exit_.value.code == 128 + signum
    assert capsys.readouterr().err == f"interrupted by {signal.Signals(signum).name}\n"
    assert not any(tmp_path.iterdir())


def test_a_signal_during_the_commit_waits_until_the_output_is_in_place(tmp_path, monkeypatch, capsys):
    final = tmp_path / "frames"
    _write(final, "old", folder=True)
    real_replace = Path.replace

    def replace_then_signalled(self, target):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives between the two renames of the commit
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", replace_then_signalled)
    with fail_on(signal.SIGTERM), pytest.raises(SystemExit) as exit_:
        _fake_run(tmp_path)
    assert exit_.value.code == 128 + signal.SIGTERM
    assert _content(final) == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


@shipped
def test_sigterm_while_rendering_frames_leaves_nothing_behind(scene, tmp_path):
    """A real ns-internals-render, terminated once it has written a frame; also removes a stale staging folder."""
    out = tmp_path / "out"
    stale = out / ".frames.partial-99999999-abc"  # from a crashed run
    (stale / "frames").mkdir(parents=True)
    args = ["interpolate", "--load-config", str(RUN), "--output-path", str(out / "frames")]
    args += ["--output-format", "images", "--image-format", "png", "--interpolation-steps", "10"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TORCH_HOME": str(tmp_path / "torch_home")}
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        proc = subprocess.Popen(
            [str(BIN / "ns-internals-render"), *args, "--device", "cpu"],
            cwd=REPO,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 300
            while not list(out.glob(f".frames.partial-{proc.pid}-*/frames/*.png")):
                assert proc.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
                assert time.monotonic() < deadline, "no frame written in 300 s"
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = (tmp_path / "stderr").read_text()
    assert code == 128 + signal.SIGTERM, err[-3000:]
    assert err.splitlines()[-1] == "interrupted by SIGTERM" and "Traceback" not in err
    assert not any(out.iterdir()), sorted(p.name for p in out.iterdir())
