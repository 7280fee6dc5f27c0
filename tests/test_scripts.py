"""The launch scripts: help, the ns-train commands they would run (dry run), devices, skipping missing
scenes, overrides, real launching with a stand-in ns-train, and launch_eval.sh's results table."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
BLENDER = ["chair", "drums", "ficus", "hotdog", "lego", "materials", "mic", "ship"]
LLFF = ["fern", "flower", "fortress", "horns", "leaves", "orchids", "room", "trex"]
NERFACTO = [
    "--pipeline.model.camera-optimizer.mode off",
    "--pipeline.model.use-average-appearance-embedding False",
    "--pipeline.model.distortion-loss-mult 0",
]
NDC_NERF = [
    "--pipeline.datamanager.train-num-rays-per-batch 512",
    "--max-num-iterations 500000",
    "--pipeline.model.background-color last_sample",
    "--pipeline.model.use-ndc-collider True",
]
# script -> (method, dataparser, scenes, required file, method settings, dataparser settings)
EXPECTED = {
    "launch_train_blender_nerf.sh": (
        "activation-nerf", "blender-data", BLENDER, "transforms_train.json",
        ["--pipeline.datamanager.train-num-rays-per-batch 512"], [],
    ),
    "launch_train_blender_mipnerf.sh": (
        "activation-mipnerf", "blender-data", BLENDER, "transforms_train.json",
        ["--pipeline.datamanager.train-num-rays-per-batch 512"], [],
    ),
    "launch_train_llff_nerf.sh": (
        "activation-nerf", "llff-data", LLFF, "poses_bounds.npy",
        NDC_NERF, ["--scale-factor 0.75", "--downscale-factor 4"],
    ),
    "launch_train_llff_mipnerf.sh": (
        "activation-mipnerf", "llff-data", LLFF, "poses_bounds.npy",
        NDC_NERF, ["--scale-factor 0.75", "--downscale-factor 4"],
    ),
    "launch_train_blender_nerfacto.sh": (
        "activation-nerfacto", "blender-data", BLENDER, "transforms_train.json",
        [*NERFACTO, "--max-num-iterations 16500", "--pipeline.model.background-color white",
         "--pipeline.model.proposal-initial-sampler uniform", "--pipeline.model.disable-scene-contraction True",
         "--pipeline.datamanager.train-num-rays-per-batch 2048",
         "--pipeline.datamanager.eval-num-rays-per-batch 2048", "--pipeline.model.eval-num-rays-per-chunk 2048"],
        [],
    ),
    "launch_train_llff_nerfacto.sh": (
        "activation-nerfacto", "nerfstudio-data", LLFF, "transforms.json",
        [*NERFACTO, "--max-num-iterations 30000", "--pipeline.model.proposal-initial-sampler piecewise",
         "--pipeline.model.disable-scene-contraction False",
         "--pipeline.datamanager.train-num-rays-per-batch 1024",
         "--pipeline.datamanager.eval-num-rays-per-batch 2048", "--pipeline.model.eval-num-rays-per-chunk 2048"],
        ["--downscale-factor 4"],
    ),
    "launch_train_llff_nerfacto_NDC.sh": (
        "activation-nerfacto", "llff-data", LLFF, "poses_bounds.npy",
        [*NERFACTO, "--pipeline.model.proposal-initial-sampler uniform",
         "--pipeline.model.disable-scene-contraction False", "--pipeline.model.use-ndc-collider True",
         "--pipeline.datamanager.train-num-rays-per-batch 1024",
         "--pipeline.datamanager.eval-num-rays-per-batch 2048", "--pipeline.model.eval-num-rays-per-chunk 2048"],
        ["--scale-factor 0.75", "--downscale-factor 4"],
    ),
}  # fmt: skip


def run(
    script: str, *args: str, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def commands(stdout: str) -> list[list[str]]:
    """The ns-train command lines of a dry run, split as the shell would."""
    return [shlex.split(line) for line in stdout.splitlines() if "ns-train" in line]


def contains(args: list[str], setting: str) -> int:
    """Index of the contiguous `setting` ("--flag value") in `args` (fails if absent)."""
    words = setting.split()
    for i in range(len(args) - len(words) + 1):
        if args[i : i + len(words)] == words:
            return i
    raise AssertionError(f"{setting!r} not in {args}")


def make_data(root: Path, scenes: list[str], required: str) -> None:
    for scene in scenes:
        (root / scene).mkdir(parents=True)
        (root / scene / required).write_text("{}")


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_help(script):
    method, dataparser, scenes, _, settings, dp_settings = EXPECTED[script]
    result = run(script, "-h")
    assert result.returncode == 0 and result.stderr == ""
    text = result.stdout
    assert text.startswith(f"Usage: {script} [options] [GPU_ID ...] [-- NS_TRAIN_ARGS ...]")
    for option in ("--data-root", "--output-root", "--scenes", "--single", "--dry-run", "--dataparser-args"):
        assert option in text
    assert f"ns-train {method}" in text and " ".join(scenes) in text
    assert f"Dataparser settings ({dataparser}):" in text
    for setting in settings + dp_settings:
        assert f"  {setting}\n" in text  # one setting a line


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_dry_run_commands(script, tmp_path):
    method, dataparser, scenes, required, settings, dp_settings = EXPECTED[script]
    root = tmp_path / "data"
    make_data(root, scenes[1:-1], required)  # first scene missing
    (root / scenes[-1]).mkdir()  # last scene without its required file
    result = run(
        script, "-n", "-d", str(root), "-o", str(tmp_path / "out"), "-t", "T0", "0", "1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert f"missing scene folder {root / scenes[0]}: skipped" in result.stderr
    assert f"scene folder {root / scenes[-1]} has no {required}: skipped" in result.stderr
    assert "6 job(s) would be launched, 2 scene(s) skipped" in result.stdout
    cmds = commands(result.stdout)
    assert len(cmds) == 6
    assert not (tmp_path / "out").exists()  # a dry run runs and writes nothing
    for k, (cmd, scene) in enumerate(zip(cmds, scenes[1:-1], strict=True)):
        assert cmd[0] == f"CUDA_VISIBLE_DEVICES={k % 2}"  # round-robin over the given GPUs
        assert Path(cmd[1]).name == "ns-train" and cmd[2] == method
        split = cmd.index(dataparser)
        method_part, dp_part = cmd[3:split], cmd[split + 1 :]
        for setting in settings:
            contains(method_part, setting)
        for setting in (
            "--output-dir " + str(tmp_path / "out"),
            f"--experiment-name {scene}",
            "--timestamp T0",
        ):
            contains(method_part, setting)
        assert dp_part[:2] == ["--data", str(root / scene)]
        for setting in dp_settings:
            contains(dp_part, setting)
        assert "--machine.device-type" not in cmd


def test_overrides_come_after_the_defaults(tmp_path):
    make_data(tmp_path, ["fern"], "poses_bounds.npy")
    result = run(
        "launch_train_llff_nerf.sh", "-n", "-d", str(tmp_path), "-e", "fern", "-p", "--downscale-factor 8",
        "3", "--", "--max-num-iterations", "7", "--pipeline.model.use-ndc-collider", "False",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (cmd,) = commands(result.stdout)
    assert cmd[0] == "CUDA_VISIBLE_DEVICES=3"
    assert contains(cmd, "--max-num-iterations 7") > contains(cmd, "--max-num-iterations 500000")
    assert contains(cmd, "--pipeline.model.use-ndc-collider False") > contains(
        cmd, "--pipeline.model.use-ndc-collider True"
    )
    assert (
        cmd.index("llff-data") < contains(cmd, "--downscale-factor 4") < contains(cmd, "--downscale-factor 8")
    )
    assert contains(cmd, "--max-num-iterations 7") < cmd.index("llff-data")


def test_devices_from_nvidia_smi_or_cpu(tmp_path):
    make_data(tmp_path / "data", ["fern", "trex", "room"], "poses_bounds.npy")
    smi = tmp_path / "nvidia-smi"
    smi.write_text('#!/bin/sh\nprintf "0, 20000\\n1, 500\\n2, 15000\\n"\n')
    smi.chmod(0o755)
    args = ("-n", "-d", str(tmp_path / "data"), "-e", "fern trex room")
    gpu = run("launch_train_llff_nerf.sh", *args, env={"NVIDIA_SMI": str(smi)})
    assert "devices: 0 2" in gpu.stdout
    assert [c[0] for c in commands(gpu.stdout)] == [f"CUDA_VISIBLE_DEVICES={i}" for i in (0, 2, 0)]
    assert (
        "devices: 0\n"
        in run("launch_train_llff_nerf.sh", *args, "-m", "16000", env={"NVIDIA_SMI": str(smi)}).stdout
    )
    cpu = run("launch_train_llff_nerf.sh", *args, env={"NVIDIA_SMI": str(tmp_path / "none")})
    assert "training on the CPU" in cpu.stdout
    for cmd in commands(cpu.stdout):
        assert not cmd[0].startswith("CUDA_VISIBLE_DEVICES") and contains(cmd, "--machine.device-type cpu")


def test_bad_arguments(tmp_path):
    for args, message in (
        (["--bogus"], "error: unknown option --bogus"),
        (["gpu0"], "error: GPU ids must be integers, got 'gpu0'"),
        (["-m", "lots"], "error: --min-free-mib must be an integer, got 'lots'"),
    ):
        result = run("launch_train_blender_nerf.sh", "-n", *args)
        assert result.returncode == 2 and result.stderr.splitlines() == [result.stderr.strip()]
        assert result.stderr.startswith(message)


STUB = """#!/usr/bin/env bash
scene=""; prev=""
for a in "$@"; do [[ "$prev" == --experiment-name ]] && scene="$a"; prev="$a"; done
echo "start $scene ${CUDA_VISIBLE_DEVICES:-none} $(date +%s.%N)" >> "$STUB_LOG"
sleep 0.3
echo "end $scene $(date +%s.%N)" >> "$STUB_LOG"
echo "training $scene"
[[ "$scene" != "${STUB_FAIL:-}" ]]
"""


def _stub_events(log: Path) -> dict[str, dict]:
    events: dict[str, dict] = {}
    for line in log.read_text().splitlines():
        kind, scene, *rest = line.split()
        events.setdefault(scene, {})[kind] = float(rest[-1])
        if kind == "start":
            events[scene]["device"] = rest[0]
    return events


def test_real_launch_with_a_stand_in_ns_train(tmp_path):
    stub = tmp_path / "ns-train"
    stub.write_text(STUB)
    stub.chmod(0o755)
    make_data(tmp_path / "data", ["fern", "trex", "room"], "poses_bounds.npy")
    out = tmp_path / "out"
    base = ["-d", str(tmp_path / "data"), "-o", str(out), "-e", "fern trex room", "-t", "T1"]

    log = tmp_path / "single.log"
    result = run(
        "launch_train_llff_nerf.sh", *base, "-s", "5", env={"NS_TRAIN": str(stub), "STUB_LOG": str(log)}
    )
    assert result.returncode == 0, result.stderr
    events = _stub_events(log)
    assert {e["device"] for e in events.values()} == {"5"}
    order = sorted(events.values(), key=lambda e: e["start"])
    assert all(a["end"] <= b["start"] for a, b in zip(order, order[1:], strict=False))  # one at a time
    for scene in ("fern", "trex", "room"):
        assert (out / "logs" / f"{scene}_activation-nerf_T1.log").read_text() == f"training {scene}\n"

    log = tmp_path / "parallel.log"
    result = run(
        "launch_train_llff_nerf.sh", *base, "0", "1",
        env={"NS_TRAIN": str(stub), "STUB_LOG": str(log), "STUB_FAIL": "trex"},
    )  # fmt: skip
    assert result.returncode == 1 and "1 job(s) failed" in result.stderr
    events = _stub_events(log)
    assert [events[s]["device"] for s in ("fern", "trex", "room")] == ["0", "1", "0"]
    assert events["trex"]["start"] < events["fern"]["end"]  # GPUs 0 and 1 in parallel


# ---- launch_eval.sh -------------------------------------------------------------------------------
CONFIG = """_target: !!python/name:nerfstudio.engine.trainer.Trainer ''
experiment_name: {scene}
method_name: {method}
pipeline:
  datamanager:
    dataparser: !!python/object:{parser}
      data: !!python/object/apply:pathlib.PosixPath []
  model:
    use_ndc_collider: {ndc}
"""


def _summary(method: str, psnr: float, base_psnr: float, t: float, lpips: float | None) -> dict:
    exp = {"psnr": psnr, "ssim": 0.5, "lpips": lpips, "t": t, "time_ratio": t / 2.0, "macs_ratio": 0.6}
    return {
        "method": method,
        "base": {"psnr": base_psnr, "ssim": 0.6, "lpips": lpips, "t": 2.0},
        "experiments": {"layer_00_ups_0_fct_std_half": exp},
    }


def _fake_runs(root: Path) -> dict[str, Path]:
    runs = {}
    for scene, method, parser, ndc, summary in (
        ("fern", "activation-nerf", "nerfinternals.data.llff.LLFFDataParserConfig", "true",
         _summary("activation-nerf", 24.0, 25.0, 1.0, 0.2)),
        ("trex", "activation-nerf", "nerfinternals.data.llff.LLFFDataParserConfig", "true",
         _summary("activation-nerf", 26.0, 27.0, 0.6, None)),
        ("lego", "activation-nerf",
         "nerfstudio.data.dataparsers.blender_dataparser.BlenderDataParserConfig", "false",
         _summary("activation-nerf", 30.0, 31.0, 0.8, 0.1)),
        ("room", "activation-nerfacto", "nerfinternals.data.llff.LLFFDataParserConfig", "true", None),
    ):  # fmt: skip
        run_dir = root / scene / method / "T"
        run_dir.mkdir(parents=True)
        (run_dir / "config.yml").write_text(CONFIG.format(scene=scene, method=method, parser=parser, ndc=ndc))
        if summary:
            (run_dir / "eval").mkdir()
            (run_dir / "eval" / "summary.json").write_text(json.dumps(summary))
        runs[scene] = run_dir
    return runs


def test_launch_eval_help_and_dry_run(tmp_path):
    result = run("launch_eval.sh", "-h")
    assert result.returncode == 0 and result.stdout.startswith(
        "Usage: launch_eval.sh [options] [-- EVAL_ARGS ...]"
    )
    for option in ("--output-root", "--results-dir", "--eval-dir", "--force", "--collect-only", "--dry-run"):
        assert option in result.stdout
    runs = _fake_runs(tmp_path / "out")
    result = run(
        "launch_eval.sh", "-n", "-o", str(tmp_path / "out"), "-g", "2", "--", "--layer", "0", "--fct", "1"
    )
    assert result.returncode == 0, result.stderr
    assert "4 run(s) under" in result.stdout
    lines = [
        shlex.split(line) for line in result.stdout.splitlines() if "eval.py" in line or "collect" in line
    ]
    (evaluate, collect) = lines  # only the run without a summary is evaluated
    assert evaluate[0] == "CUDA_VISIBLE_DEVICES=2" and evaluate[2].endswith("nerfinternals/eval.py")
    assert evaluate[3:] == [
        "--load-config", str(runs["room"] / "config.yml"), "--output-dir", "eval", "--layer", "0", "--fct", "1",
    ]  # fmt: skip
    assert collect[1].endswith("scripts/collect_results.py") and collect[2] == str(tmp_path / "out")
    assert result.stdout.count("already evaluated") == 3
    forced = run("launch_eval.sh", "-n", "-f", "-o", str(tmp_path / "out"))
    assert sum("--overwrite" in line for line in forced.stdout.splitlines()) == 4
    assert not (tmp_path / "out" / "results.md").exists()
    missing = run("launch_eval.sh", "-n", "-o", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: output root not found")


def test_launch_eval_collects_one_table(tmp_path):
    _fake_runs(tmp_path / "out")
    result = run("launch_eval.sh", "-c", "-o", str(tmp_path / "out"), "-r", str(tmp_path / "results"))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "results" / "results.json").read_text())["rows"]
    table = {(r["method"], r["data"], r["experiment"]): r for r in rows}
    assert set(table) == {
        ("activation-nerf", "llff+ndc", "base"),
        ("activation-nerf", "llff+ndc", "layer_00_ups_0_fct_std_half"),
        ("activation-nerf", "blender", "base"),
        ("activation-nerf", "blender", "layer_00_ups_0_fct_std_half"),
    }
    llff = table[("activation-nerf", "llff+ndc", "layer_00_ups_0_fct_std_half")]
    assert (
        llff["runs"] == 2 and llff["psnr"] == pytest.approx(25.0) and llff["time_ratio"] == pytest.approx(0.4)
    )
    assert llff["lpips"] == pytest.approx(0.2)  # mean over the runs that have it
    assert table[("activation-nerf", "llff+ndc", "base")]["psnr"] == pytest.approx(26.0)
    md = (tmp_path / "results" / "results.md").read_text()
    assert (
        "| activation-nerf | llff+ndc | layer_00_ups_0_fct_std_half | 2 | 25.00 | 0.5000 | 0.2000 | 0.400 | 0.600 |"
        in md
    )
    assert "| activation-nerf | blender | base | 1 | 31.00 |" in md
    assert "Runs without an evaluation summary" in md and str(tmp_path / "out" / "room") in md
    assert md in result.stdout


def test_train_lego_nerfacto_help_dry_run_and_missing_data(tmp_path):
    help_ = run("train_lego_nerfacto.sh", "-h")
    assert help_.returncode == 0 and help_.stdout.startswith("usage: scripts/train_lego_nerfacto.sh")
    scene = tmp_path / "lego"
    scene.mkdir()
    (scene / "transforms_train.json").write_text("{}")
    dry = run("train_lego_nerfacto.sh", "-n", str(scene), env={**os.environ, "OUT": str(tmp_path / "out")})
    assert dry.returncode == 0, dry.stderr
    train = next(line for line in dry.stdout.splitlines() if "ns-train" in line)
    for flag in (
        "activation-nerfacto",
        "--pipeline.datamanager.camera-res-scale-factor 0.25",
        "--pipeline.model.num-proposal-samples-per-ray 256 96",
        "--pipeline.model.num-nerf-samples-per-ray 48",
        "--pipeline.model.proposal-mlp-layer-width 64",
        "--pipeline.model.disable-scene-contraction True",
        f"blender-data --data {scene}",
    ):
        assert flag in train
    assert not (tmp_path / "out").exists()
    missing = run("train_lego_nerfacto.sh", str(tmp_path / "nope"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: no Blender scene at")


def test_collect_results_per_scene_and_one_mean_table_per_eval_folder(tmp_path):
    runs = _fake_runs(tmp_path / "out")
    other = _summary("activation-nerf", 20.0, 25.0, 0.5, None)  # fern evaluated again, other settings
    (runs["fern"] / "eval-grid").mkdir()
    (runs["fern"] / "eval-grid" / "summary.json").write_text(json.dumps(other))
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "collect_results.py"), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    means = {(r["eval_dir"], r["data"], r["experiment"]): r for r in results["rows"]}
    exp = "layer_00_ups_0_fct_std_half"
    # the eval folders are never averaged together: fern's second evaluation is a group of its own
    assert means[("eval", "llff+ndc", exp)]["runs"] == 2
    assert means[("eval", "llff+ndc", exp)]["psnr"] == pytest.approx(25.0)
    assert means[("eval-grid", "llff+ndc", exp)]["runs"] == 1
    assert means[("eval-grid", "llff+ndc", exp)]["psnr"] == pytest.approx(20.0)
    per_scene = {(r["scene"], r["eval_dir"], r["experiment"]): r for r in results["per_scene"]}
    assert len(per_scene) == 2 * 4  # base + one experiment for fern (twice), trex and lego
    assert per_scene[("trex", "eval", exp)]["psnr"] == pytest.approx(26.0)
    assert per_scene[("trex", "eval", exp)]["time_ratio"] == pytest.approx(0.3)
    assert per_scene[("fern", "eval-grid", "base")]["psnr"] == pytest.approx(25.0)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## Eval folder `eval`" in md and "## Eval folder `eval-grid`" in md
    assert f"| trex | activation-nerf | llff+ndc | eval | {exp} | 26.00 | 0.5000 | — | 0.300 | 0.600 |" in md
    assert f"- {runs['room']}\n" in md  # the run without a summary


# ---- train_real.sh --------------------------------------------------------------------------------
REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
# the reduced nerfacto recipe, as scripts/train_lego_nerfacto.sh trains it
REDUCED_NERFACTO = [
    "--pipeline.datamanager.train-num-rays-per-batch 1024",
    "--pipeline.model.num-proposal-samples-per-ray 256 96",
    "--pipeline.model.num-nerf-samples-per-ray 48",
    "--pipeline.model.num-levels 8",
    "--pipeline.model.log2-hashmap-size 17",
    "--pipeline.model.hidden-dim 32",
    "--pipeline.model.hidden-dim-color 32",
    "--pipeline.model.distortion-loss-mult 0",
    "--pipeline.model.use-average-appearance-embedding False",
]
# run -> (method, method folder, dataparser, format, settings, dataparser settings, launch script of FULL=1)
REAL_RUNS = {
    "fox-activation-nerfacto": (
        "activation-nerfacto", "activation-nerfacto", "nerfstudio-data", "nerfstudio",
        [*REDUCED_NERFACTO, "--pipeline.model.proposal-mlp-layer-width 64",
         "--pipeline.model.disable-scene-contraction False"],
        ["--downscale-factor 4"], "launch_train_llff_nerfacto.sh",
    ),
    "fox-nerfacto": (
        "nerfacto", "nerfacto", "nerfstudio-data", "nerfstudio",
        [*REDUCED_NERFACTO, "--pipeline.model.implementation torch",
         "--pipeline.model.disable-scene-contraction False", "--pipeline.model.camera-optimizer.mode off"],
        ["--downscale-factor 4"], "launch_train_llff_nerfacto.sh",
    ),
    "fern-activation-nerfacto-ndc": (
        "activation-nerfacto", "activation-nerfacto", "llff-data", "llff",
        [*REDUCED_NERFACTO, "--pipeline.model.proposal-mlp-layer-width 64",
         "--pipeline.model.use-ndc-collider True", "--pipeline.model.proposal-initial-sampler uniform"],
        ["--downscale-factor 8", "--scale-factor 0.75", "--eval-interval 6"], "launch_train_llff_nerfacto_NDC.sh",
    ),
    "fern-activation-nerf-ndc": (
        "activation-nerf", "activation-nerf", "llff-data", "llff",
        [*NDC_NERF[:1], *NDC_NERF[2:], "--pipeline.model.base-mlp-layer-width 128",
         "--pipeline.model.num-coarse-samples 32", "--pipeline.model.num-importance-samples 64"],
        ["--downscale-factor 8", "--scale-factor 0.75", "--eval-interval 6"], "launch_train_llff_nerf.sh",
    ),
}  # fmt: skip


def make_capture(root: Path, fmt: str, factor: int, n: int = 3) -> Path:
    """A stand-in capture that passes the script's data check (empty image files)."""
    import numpy as np

    images = root / f"images_{factor}"
    images.mkdir(parents=True)
    for i in range(n):
        (images / f"{i:04d}.png").write_bytes(b"")
    if fmt == "llff":
        np.save(root / "poses_bounds.npy", np.ones((n, 17)))
    else:
        frames = [
            {"file_path": f"images/{i:04d}.png", "transform_matrix": np.eye(4).tolist()} for i in range(n)
        ]
        (root / "transforms.json").write_text(json.dumps({"frames": frames}))
    return root


def real_commands(stdout: str) -> tuple[list[str], list[str]]:
    """The ns-train and strip_checkpoint command lines of train_real.sh's output."""
    lines = [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]
    (train,) = [c for c in lines if "--max-num-iterations" in c]
    (strip,) = [c for c in lines if "strip_checkpoint.py" in " ".join(c)]
    return train, strip


def test_train_real_help():
    result = run("train_real.sh", "-h")
    assert result.returncode == 0 and result.stderr == ""
    text = result.stdout
    assert text.startswith("usage: scripts/train_real.sh [-h] [-n] RUN [DATA]")
    for word in (*REAL_RUNS, "ITERS", "OUT", "DEVICE", "DATA", "FULL", "EXTRA_ARGS", "8 x 128"):
        assert word in text


@pytest.mark.parametrize("name", sorted(REAL_RUNS))
def test_train_real_dry_run(name, tmp_path):
    method, folder, dataparser, fmt, settings, dp_settings, _ = REAL_RUNS[name]
    factor = int(dp_settings[0].split()[1])
    data = make_capture(tmp_path / "capture", fmt, factor)
    out = tmp_path / "out"
    result = run("train_real.sh", "-n", name, str(data), env={"OUT": str(out)})
    assert result.returncode == 0, result.stderr
    train, strip = real_commands(result.stdout)
    program, start = train[: train.index(method)], train.index(method) + 1
    if method == "nerfacto":  # stock: ns-train with LPIPS built offline
        assert Path(program[0]).name == "python" and program[1:] == ["scripts/ns_train_offline.py"]
    else:
        assert [Path(p).name for p in program] == ["ns-train"]
    split = train.index(dataparser)
    model, parser = train[start:split], train[split + 1 :]
    for setting in (*settings, "--machine.device-type cpu", "--max-num-iterations 2000",
                    f"--output-dir {out}", "--experiment-name capture", "--timestamp run"):  # fmt: skip
        contains(model, setting)
    assert parser[:2] == ["--data", str(data)]
    for setting in dp_settings:
        contains(parser, setting)
    assert strip[-2:] == ["--run-dir", str(out / "capture" / folder / "run")]
    assert not out.exists()  # a dry run writes nothing
    # the reduced nerfacto recipe is scripts/train_lego_nerfacto.sh's
    if "nerfacto" in method:
        lego = make_capture(tmp_path / "lego", "nerfstudio", 4)
        (lego / "transforms_train.json").write_text("{}")
        lego_train = next(line for line in run("train_lego_nerfacto.sh", "-n", str(lego)).stdout.splitlines())
        for setting in REDUCED_NERFACTO:
            assert setting in lego_train


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/real")
def test_train_real_default_captures(tmp_path):
    for name, scene in (("fox-nerfacto", "fox"), ("fern-activation-nerf-ndc", "fern")):
        result = run("train_real.sh", "-n", name, env={"OUT": str(tmp_path)})
        assert result.returncode == 0, result.stderr
        train, _ = real_commands(result.stdout)
        contains(train, f"--data ../shared/real/{scene}")
        contains(train, f"--experiment-name {scene}")


def test_train_real_overrides(tmp_path):
    data = make_capture(tmp_path / "flower", "llff", 8)
    env = {"DATA": str(data), "OUT": str(tmp_path / "o"), "ITERS": "7", "DEVICE": "mps",
           "EXTRA_ARGS": "--pipeline.model.num-levels 4  --pipeline.model.hidden-dim 16"}  # fmt: skip
    result = run("train_real.sh", "-n", "fern-activation-nerfacto-ndc", env=env)
    assert result.returncode == 0, result.stderr
    train, strip = real_commands(result.stdout)
    for setting in ("--max-num-iterations 7", "--steps-per-save 7", "--machine.device-type mps",
                    f"--output-dir {tmp_path / 'o'}", "--experiment-name flower"):  # fmt: skip
        contains(train, setting)
    # EXTRA_ARGS come after the run's settings (so they win) and before the dataparser
    assert contains(train, "--pipeline.model.num-levels 8") < contains(train, "--pipeline.model.num-levels 4")
    assert contains(train, "--pipeline.model.hidden-dim 16") < train.index("llff-data")
    assert strip[-1] == str(tmp_path / "o" / "flower" / "activation-nerfacto" / "run")
    # a relative DATA is the caller's, not the repository's
    other = make_capture(tmp_path / "rel" / "horns", "llff", 8)
    result = run("train_real.sh", "-n", "fern-activation-nerf-ndc", "horns", cwd=other.parent, env=env)
    assert result.returncode == 0, result.stderr
    contains(real_commands(result.stdout)[0], f"--data {other}")


@pytest.mark.parametrize("name", sorted(REAL_RUNS))
def test_train_real_full_size_is_the_authors(name, tmp_path):
    method, _, dataparser, fmt, _, _, launch = REAL_RUNS[name]
    data = make_capture(tmp_path / "capture", fmt, 4)  # the authors' downscale factor
    result = run("train_real.sh", "-n", name, str(data), env={"FULL": "1", "OUT": str(tmp_path / "o")})
    assert result.returncode == 0, result.stderr
    train, _ = real_commands(result.stdout)
    _, _, _, _, authors, authors_dp = EXPECTED[launch]
    for setting in authors:
        if "--max-num-iterations" not in setting:
            contains(train, setting)
    contains(train, f"--max-num-iterations {500000 if method == 'activation-nerf' else 30000}")
    contains(train, "--machine.device-type cuda")
    for setting in authors_dp:
        contains(train[train.index(dataparser) :], setting)
    # full-size models: no reduced widths or sample counts
    assert not any(flag in train for flag in ("--pipeline.model.num-levels", "--pipeline.model.hidden-dim",
        "--pipeline.model.proposal-mlp-layer-width", "--pipeline.model.base-mlp-layer-width",
        "--pipeline.model.num-coarse-samples"))  # fmt: skip


def _expect_error(result: subprocess.CompletedProcess, start: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr  # one line
    assert result.stderr.startswith(f"error: {start}"), result.stderr


def test_train_real_errors(tmp_path):
    import numpy as np

    _expect_error(run("train_real.sh"), "no RUN given")
    _expect_error(run("train_real.sh", "-x", "fox-nerfacto"), "unknown option -x")
    _expect_error(run("train_real.sh", "-n", "lego-nerf", str(tmp_path)), "unknown run 'lego-nerf'")
    _expect_error(
        run("train_real.sh", "-n", "fox-nerfacto", str(tmp_path / "none")), "capture folder not found"
    )
    fern, fox = "fern-activation-nerfacto-ndc", "fox-activation-nerfacto"
    _expect_error(run("train_real.sh", "-n", fox, str(tmp_path), env={"ITERS": "many"}), "ITERS must be")

    llff = make_capture(tmp_path / "llff", "llff", 8)
    _expect_error(run("train_real.sh", "-n", fox, str(llff)), "no nerfstudio capture at")  # wrong format
    np.save(llff / "poses_bounds.npy", np.ones((3, 15)))
    _expect_error(run("train_real.sh", "-n", fern, str(llff)), "")
    assert (
        "must hold an N x 17 array, found shape (3, 15)" in run("train_real.sh", "-n", fern, str(llff)).stderr
    )
    np.save(llff / "poses_bounds.npy", np.ones((4, 17)))
    _expect_error(run("train_real.sh", "-n", fern, str(llff)), f"{llff / 'images_8'} holds 3 images")
    (llff / "images_8").rename(llff / "images_4")
    _expect_error(
        run("train_real.sh", "-n", fern, str(llff)), f"no images_8/ (or images/ to make it from) in {llff}"
    )
    (llff / "poses_bounds.npy").unlink()
    _expect_error(run("train_real.sh", "-n", fern, str(llff)), f"no LLFF capture at {llff}")

    nerfstudio = make_capture(tmp_path / "ns", "nerfstudio", 4)
    (nerfstudio / "images_4" / "0001.png").unlink()
    _expect_error(run("train_real.sh", "-n", fox, str(nerfstudio)), "1 of 3 frames have no image in")
    (nerfstudio / "transforms.json").write_text('{"frames": [')
    _expect_error(run("train_real.sh", "-n", fox, str(nerfstudio)), "cannot read the frames of")

    # an existing run folder is kept as it is
    data = make_capture(tmp_path / "scene", "llff", 8)
    run_dir = tmp_path / "out" / "scene" / "activation-nerf" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "keep").write_text("x")
    for args in (["-n"], []):
        result = run(
            "train_real.sh", *args, "fern-activation-nerf-ndc", str(data), env={"OUT": str(tmp_path / "out")}
        )
        _expect_error(result, f"{run_dir} exists (remove it to retrain)")
    assert [p.name for p in run_dir.iterdir()] == ["keep"]


def test_train_real_tiny_run_then_eval(tmp_path):
    """A real (tiny) fern-activation-nerfacto-ndc run on a generated LLFF capture; eval.py evaluates it."""
    from nerfinternals.data.synthetic import generate_llff_scene
    from tests.runs import TINY_FLAGS, run_eval

    data = generate_llff_scene(tmp_path / "blocks", "blocks", width=128, height=96, grid=(4, 4), seed=3,
                               downscale_factors=(8,))  # fmt: skip
    home = tmp_path / "torch_home"
    home.mkdir()
    tiny = ["--pipeline.datamanager.train-num-rays-per-batch 64", "--pipeline.model.eval-num-rays-per-chunk 256",
            " ".join(TINY_FLAGS["activation-nerfacto"])]  # fmt: skip
    env = {"OUT": str(tmp_path / "out"), "ITERS": "2", "TORCH_HOME": str(home), "EXTRA_ARGS": " ".join(tiny)}
    result = run("train_real.sh", "fern-activation-nerfacto-ndc", str(data), env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp_path / "out" / "blocks" / "activation-nerfacto" / "run"
    assert "fern-activation-nerfacto-ndc on blocks: trained in " in result.stdout
    (ckpt,) = (run_dir / "nerfstudio_models").glob("step-*.ckpt")
    import torch

    assert set(torch.load(ckpt, map_location="cpu", weights_only=False)) == {"step", "pipeline"}  # stripped
    assert "use_ndc_collider: true" in (run_dir / "config.yml").read_text()

    args = ["--load-config", str(run_dir / "config.yml"), "--sampler", "grid", "--fine-samples", "0", "32",
            "--skip-empty", "--max-images", "1"]  # fmt: skip
    result = run_eval(args, home, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert summary["num_images"] == 1 and len(summary["experiments"]) == 2
    assert all(math.isfinite(e["psnr"]) for e in summary["experiments"].values())
    assert not any(home.rglob("*")), "nothing may be downloaded"
