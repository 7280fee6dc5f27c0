"""``ns-internals-sweep``: the SLURM executor against stand-in sbatch / srun / sacct / squeue (what it
submits: the training array, each eval's dependency on its own training, the resources), ``--status``,
bad input (one line, nothing submitted), the local executor end to end on a tiny scene and its rerun
(nothing trained again), and ``eval.py --resume`` after an interrupted evaluation."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nerfinternals.data.synthetic import generate_blender_scene
from nerfinternals.eval import ActivationDerivedDensity, evaluate
from nerfinternals.loading import InputError
from tests.runs import TINY_FLAGS

SWEEP = str(Path(sys.executable).parent / "ns-internals-sweep")
TINY_EVAL = "--layer 0 --fct 1 --max-images 2 --device cpu"
TINY_TRAIN = [
    "--max-num-iterations", "4", "--steps-per-save", "4",
    "--pipeline.datamanager.train-num-rays-per-batch", "64",
    "--pipeline.datamanager.eval-num-rays-per-batch", "64",
    "--pipeline.model.eval-num-rays-per-chunk", "256",
    *TINY_FLAGS["activation-nerf"],
]  # fmt: skip

# Stand-ins for the SLURM commands: each records its arguments (sbatch also the submitted script)
# and answers as SLURM does.
SBATCH = """#!/usr/bin/env bash
n=$(( $(cat "$FAKE_SLURM/next_id" 2>/dev/null || echo 100) ))
echo $((n + 1)) > "$FAKE_SLURM/next_id"
echo "sbatch $*" >> "$FAKE_SLURM/calls"
if [ -e "$FAKE_SLURM/refuse_from" ] && [ "$n" -ge "$(cat "$FAKE_SLURM/refuse_from")" ]; then
  echo "sbatch: error: AssocMaxSubmitJobLimit" >&2
  echo "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy" >&2
  exit 1
fi
cp "${@: -1}" "$FAKE_SLURM/job_$n.sh"
if [[ " $* " == *" --parsable "* ]]; then echo "$n"; else echo "Submitted batch job $n"; fi
"""
SINFO = """#!/usr/bin/env bash
echo "sinfo $*" >> "$FAKE_SLURM/calls"
if [ -e "$FAKE_SLURM/controller_down" ]; then
  echo "sinfo: fatal: Could not establish a configuration source" >&2; exit 1
fi
if [ -e "$FAKE_SLURM/sinfo.out" ]; then cat "$FAKE_SLURM/sinfo.out"; exit 0; fi
echo "gpu*|up|32|256000|gpu:a100:8(S:0-1)|2-00:00:00"
echo "cpu|up|2|8000|(null)|1:00:00"
"""
QUERY = """#!/usr/bin/env bash
echo "{name} $*" >> "$FAKE_SLURM/calls"
cat "$FAKE_SLURM/{name}.out" 2>/dev/null
"""


@pytest.fixture()
def slurm(tmp_path, monkeypatch) -> Path:
    """A folder of stand-in SLURM commands, first on PATH; returns the folder they record into."""
    bin_dir, record = tmp_path / "slurm_bin", tmp_path / "slurm_record"
    bin_dir.mkdir()
    record.mkdir()
    for name, text in (
        ("sbatch", SBATCH),
        ("srun", "#!/bin/sh\nexit 0\n"),
        ("sacct", QUERY.format(name="sacct")),
        ("squeue", QUERY.format(name="squeue")),
        ("sinfo", SINFO),
        ("scancel", QUERY.format(name="scancel")),
    ):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(record))
    return record


def sweep(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """The console script, as a user runs it."""
    return subprocess.run(
        [SWEEP, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.fixture()
def sweep_here(capsys):
    """The console script's entry point in this process (eval.py's flags are imported once, not per call)."""
    from nerfinternals.sweep import entrypoint

    def call(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            entrypoint(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, exit_.value.code, out, err)

    return call


def blender_stubs(root: Path, scenes: list[str]) -> Path:
    """Scene folders the dataparser reads (the stand-in SLURM tests run nothing): 48 x 48 px, one image a
    split (the default --rescale 0.125 renders them at 6 x 6 px, the smallest SSIM takes)."""
    for scene in scenes:
        generate_blender_scene(root / scene, width=48, height=48, num_train=1, num_val=1, num_test=1)
    return root


def sbatch_scripts(record: Path) -> list[dict[str, str]]:
    """The #SBATCH options of each submitted script, in submission order."""
    scripts = []
    for path in sorted(record.glob("job_*.sh"), key=lambda p: int(p.stem.split("_")[1])):
        options = dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", path.read_text(), re.M))
        scripts.append({**options, "_id": path.stem.split("_")[1]})
    return scripts


SLURM_ARGS = [
    "--executor", "slurm", "--slurm-partition", "gpu", "--slurm-gpus-per-job", "2",
    "--slurm-time", "1-02:30:00", "--slurm-cpus-per-job", "6", "--slurm-mem", "48G",
    "--slurm-array-parallelism", "3", "--slurm-extra", "account=nerf", "--slurm-extra", "qos=high",
]  # fmt: skip


def test_slurm_trainings_as_an_array_evals_after_their_own_training(slurm, sweep_here, tmp_path):
    data = blender_stubs(tmp_path / "data", ["chair", "lego"])
    out = tmp_path / "out"
    result = sweep_here(
        "--data-root", str(data), "--methods", "activation-nerf", "activation-mipnerf",
        "--output-root", str(out), *SLURM_ARGS, "--eval-args=--layer 0 --fct 1", "--",
        "--max-num-iterations", "7",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    calls = (slurm / "calls").read_text().splitlines()
    assert [c.split()[0] for c in calls if c.startswith("sbatch")] == ["sbatch"] * 6  # 1 array + 4 + 1
    train, *evals, collect = sbatch_scripts(slurm)
    # the four trainings: one array, at most 3 at a time, with the resources asked for
    assert train["array"] == "0-3%3" and train["job-name"] == "ns-train"
    for options in (train, *evals):
        assert options["partition"] == "gpu" and options["gpus-per-node"] == "2"
        assert options["cpus-per-task"] == "6" and options["mem"] == "48G"
        assert options["time"] == str(24 * 60 + 150)  # minutes
        assert options["account"] == "nerf" and options["qos"] == "high"
    jobs = json.loads((out / "_sweep" / "jobs.json").read_text())["jobs"]
    trains = [j for j in jobs if j["stage"] == "train"]
    assert [j["job_id"] for j in trains] == [f"{train['_id']}_{i}" for i in range(4)]
    assert [(j["scene"], j["method"]) for j in trains] == [
        ("chair", "activation-nerf"), ("chair", "activation-mipnerf"),
        ("lego", "activation-nerf"), ("lego", "activation-mipnerf"),
    ]  # fmt: skip
    for job in trains:  # ns-train with the pass-through arguments, into OUT/SCENE/METHOD/sweep
        cmd = job["command"]
        assert Path(cmd[0]).name == "ns-train" and cmd[1] == job["method"]
        assert cmd[cmd.index("--max-num-iterations") + 1] == "7"
        assert cmd[cmd.index("--experiment-name") + 1] == job["scene"]
        assert cmd[-3:] == ["blender-data", "--data", str(data / job["scene"])]
        assert "--machine.device-type" not in cmd  # the cluster's GPUs
    # each eval waits on its own training, and runs eval.py with --resume
    eval_jobs = [j for j in jobs if j["stage"] == "eval"]
    for options, job in zip(evals, eval_jobs, strict=True):
        (own,) = [t for t in trains if (t["scene"], t["method"]) == (job["scene"], job["method"])]
        assert options["dependency"] == f"afterok:{own['job_id']}" and "array" not in options
        assert options["kill-on-invalid-dep"] == "yes"  # a failed training cancels its eval
        assert job["job_id"] == options["_id"]
        cmd = job["command"]
        assert cmd[cmd.index("--load-config") + 1] == str(
            out.absolute() / job["scene"] / job["method"] / "sweep" / "config.yml"
        )
        assert "--resume" in cmd and cmd[-4:] == ["--layer", "0", "--fct", "1"]
    # collect after every eval, whatever became of it; no GPU
    assert collect["dependency"] == "afterany:" + ":".join(o["_id"] for o in evals)
    assert "gpus-per-node" not in collect
    # logs under the output root
    assert all(j["log"].startswith(str(out.absolute() / "_sweep" / "logs")) for j in jobs)

    # --status: the stored ids, their states from sacct (a pending array as sacct shows it) / squeue
    a = train["_id"]
    (slurm / "sacct.out").write_text(
        f"{a}_0|COMPLETED|00:10:00\n{a}_1|FAILED|00:00:05\n{a}_[2-3%3]|PENDING|00:00:00\n"
    )
    (slurm / "squeue.out").write_text(f"{evals[0]['_id']}|PENDING|0:00\n")
    status = sweep_here("--status", "--output-root", str(out))
    assert status.returncode == 0, status.stderr
    rows = {tuple(line.split("│")[1:5]) for line in status.stdout.splitlines() if line.count("│") > 5}
    rows = {tuple(cell.strip() for cell in row) for row in rows}
    assert ("chair", "activation-nerf", "train", "COMPLETED") in rows
    assert ("chair", "activation-mipnerf", "train", "FAILED") in rows
    assert ("lego", "activation-mipnerf", "train", "PENDING") in rows
    assert ("chair", "activation-nerf", "eval", "PENDING") in rows
    assert ("chair", "activation-mipnerf", "eval", "submitted") in rows  # neither knows it yet

    # the same sweep again while its jobs are queued: refused, nothing submitted
    again = sweep_here("--data-root", str(data), "--output-root", str(out), *SLURM_ARGS)
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "still queued or running" in again.stderr and "Traceback" not in again.stderr
    assert len(sbatch_scripts(slurm)) == 6


def test_a_refused_submission_cancels_what_went_before_and_records_it(slurm, sweep_here, tmp_path):
    """sbatch takes the training array and refuses the first eval (a submit limit): the array is
    cancelled, jobs.json says so, the refused job leaves no files, and a rerun is not refused."""
    data = blender_stubs(tmp_path / "data", ["chair", "lego"])
    out = tmp_path / "out"
    (slurm / "refuse_from").write_text("101")  # the first id is 100
    result = sweep_here("--data-root", str(data), "--output-root", str(out), *SLURM_ARGS)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr == (
        "error: sbatch refused the eval job(s): sbatch: error: AssocMaxSubmitJobLimit; sbatch: error: "
        "Batch job submission failed: Job violates accounting/QOS policy; the 2 job(s) submitted before "
        "it were cancelled\n"
    )
    calls = (slurm / "calls").read_text().splitlines()
    assert "scancel 100" in calls
    jobs = json.loads((out / "_sweep" / "jobs.json").read_text())["jobs"]
    assert [(j["stage"], j["state"], j["job_id"]) for j in jobs] == [
        ("train", "CANCELLED", "100_0"), ("train", "CANCELLED", "100_1"),
        ("eval", "not submitted", None), ("eval", "not submitted", None), ("collect", "not submitted", None),
    ]  # fmt: skip
    logs = out / "_sweep" / "logs"
    # the array's files (submitit leaves a link to its script under the temporary name)
    left = sorted(p.name for p in logs.iterdir() if not p.is_symlink())
    assert left == ["100_0_submitted.pkl", "100_1_submitted.pkl", "100_submission.sh"]
    (slurm / "refuse_from").unlink()
    (slurm / "squeue.out").write_text("100_0|CANCELLED|0:00|None\n100_1|CANCELLED|0:00|None\n")
    again = sweep_here("--data-root", str(data), "--output-root", str(out), *SLURM_ARGS)
    assert again.returncode == 0, again.stderr


def test_status_without_accounting_reads_squeue_then_the_result_files(slurm, sweep_here, tmp_path):
    """sacct refused (no accounting), squeue knows only what it still holds (MinJobAge): the jobs it
    has forgotten take their final state from the result file submitit writes when a job ends."""
    data = blender_stubs(tmp_path / "data", ["chair"])
    out = tmp_path / "out"
    assert sweep_here("--data-root", str(data), "--output-root", str(out), *SLURM_ARGS).returncode == 0
    (slurm / "sacct.out").write_text("Slurm accounting storage is disabled\n")
    sacct = Path(os.environ["PATH"].split(os.pathsep)[0]) / "sacct"
    sacct.write_text(sacct.read_text() + "exit 1\n")
    jobs = json.loads((out / "_sweep" / "jobs.json").read_text())["jobs"]
    train, evaluation, collect = (j["job_id"] for j in jobs)
    (slurm / "squeue.out").write_text(f"{collect}|PENDING|0:00|Dependency\n")
    logs = out / "_sweep" / "logs"
    (logs / f"{train}_0_result.pkl").write_bytes(pickle.dumps(("success", None)))
    (logs / f"{evaluation}_0_result.pkl").write_bytes(pickle.dumps(("error", "Traceback ...")))
    status = sweep_here("--status", "--output-root", str(out))
    assert status.returncode == 0, status.stderr
    calls = (slurm / "calls").read_text()
    assert "squeue -h -t all -o %i|%T|%M|%r" in calls  # finished jobs too, while squeue holds them
    recorded = json.loads((out / "_sweep" / "jobs.json").read_text())["jobs"]
    assert [(j["state"], j["note"]) for j in recorded] == [
        ("COMPLETED", ""),
        ("FAILED", f"see {logs.absolute()}/{evaluation}_0_log.err"),
        ("PENDING", "waiting: Dependency"),
    ]
    (slurm / "squeue.out").write_text("")  # forgotten by now: the recorded states stay
    assert sweep_here("--status", "--output-root", str(out)).returncode == 0
    again = json.loads((out / "_sweep" / "jobs.json").read_text())["jobs"]
    assert [j["state"] for j in again] == ["COMPLETED", "FAILED", "PENDING"]


def _finished_run(out: Path, scene: str, method: str, eval_settings: dict | None = None) -> Path:
    """A run folder as a finished 4-iteration training leaves it (the checkpoint's contents unused)."""
    run = out / scene / method / "sweep"
    (run / "nerfstudio_models").mkdir(parents=True)
    (run / "config.yml").write_text(f"method_name: {method}\nmax_num_iterations: 4\n")
    (run / "nerfstudio_models" / "step-000000003.ckpt").write_bytes(b"")
    if eval_settings is not None:
        (run / "eval").mkdir()
        (run / "eval" / "settings.json").write_text(json.dumps(eval_settings))
    return run


def test_slurm_skips_finished_trainings_and_refuses_other_eval_settings(slurm, sweep_here, tmp_path):
    from nerfinternals.sweep import eval_flags

    data = blender_stubs(tmp_path / "data", ["chair", "lego"])
    out = tmp_path / "out"
    _finished_run(out, "chair", "activation-nerf")
    result = sweep_here(
        "--data-root", str(data), "--output-root", str(out), *SLURM_ARGS, "--eval-args=--layer 1"
    )
    assert result.returncode == 0, result.stderr
    train, eval_chair, eval_lego, _ = sbatch_scripts(slurm)
    assert "array" not in train  # one training left: a single job
    assert "dependency" not in eval_chair  # its training is done
    assert eval_lego["dependency"] == f"afterok:{train['_id']}"

    # --stages eval collect: only the finished run is evaluated
    out3 = tmp_path / "out3"
    _finished_run(out3, "chair", "activation-nerf")
    before = len(sbatch_scripts(slurm))
    result = sweep_here(
        "--data-root", str(data), "--output-root", str(out3), *SLURM_ARGS, "--stages", "eval", "collect"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [("dependency" in o) for o in sbatch_scripts(slurm)[before:]] == [False, True]  # eval, collect
    jobs = json.loads((out3 / "_sweep" / "jobs.json").read_text())["jobs"]
    assert [(j["stage"], j["scene"], j["state"]) for j in jobs] == [
        ("eval", "chair", "submitted"), ("eval", "lego", "skipped"), ("collect", "—", "submitted"),
    ]  # fmt: skip
    assert jobs[1]["note"] == "no finished training"

    # an eval folder with other settings: one line, nothing submitted
    out2 = tmp_path / "out2"
    _finished_run(out2, "lego", "activation-nerf", {"flags": eval_flags(["--layer", "2"])})
    before = len(sbatch_scripts(slurm))
    result = sweep_here(
        "--data-root", str(data), "--output-root", str(out2), *SLURM_ARGS, "--eval-args=--layer 1"
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ") and "other settings (layer)" in result.stderr
    assert len(sbatch_scripts(slurm)) == before and not (out2 / "_sweep").exists()


def test_bad_input_is_one_line_and_submits_nothing(slurm, sweep_here, tmp_path):
    data = blender_stubs(tmp_path / "data", ["lego"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "llff" / "fern").mkdir(parents=True)
    (tmp_path / "llff" / "fern" / "poses_bounds.npy").write_bytes(b"")
    unreadable = tmp_path / "unreadable"
    (unreadable / "ship").mkdir(parents=True)
    (unreadable / "ship" / "transforms_train.json").write_text("{}")  # the format's file, but no frames
    # A PATH this test controls: the console script's interpreter is an absolute path, so nothing else
    # is needed, and a SLURM client that the machine may have installed is not found.
    (tmp_path / "bare_bin").mkdir()
    no_slurm = {"PATH": str(tmp_path / "bare_bin")}
    cases = [
        (["--data-root", str(data), "--executor", "slurm"], no_slurm, "--executor slurm needs sbatch and srun on PATH"),
        (["--data-root", str(tmp_path / "empty")], None, "no scene folders in"),
        (["--data-root", str(tmp_path / "nowhere")], None, "data root not found"),
        (["--data-root", str(tmp_path / "llff"), "--dataparser", "blender-data"], None,
         "is not in the blender-data format: it has no transforms_train.json"),
        (["--data-root", str(data), "--methods", "instant-ngp"], None, "argument --methods: invalid choice: 'instant-ngp'"),
        (["--data-root", str(data), "--scenes", "ship"], None, "scene 'ship' not found"),
        (["--data-root", str(data), "--eval-args=--layer zero"], None, "--eval-args:"),
        (["--data-root", str(data), "--eval-args=--output-dir x"], None, "--output-dir is set by the sweep"),
        (["--data-root", str(data), "--eval-args=--fct 7"], None, "--eval-args: --fct 7 is out of range"),
        (["--data-root", str(data), "--eval-args=--rescale 0.1"], None,
         "--eval-args: --rescale 0.1 renders the eval images of lego (48 x 48 px) at 4 x 4 px: SSIM needs at "
         "least 6 px a side (--rescale 0.125 or more)"),
        (["--data-root", str(unreadable)], None, "/ship: blender-data cannot read it ("),
        (["--data-root", str(data), *SLURM_ARGS[:1], "slurm", "--slurm-time", "soon"], None, "--slurm-time: cannot read 'soon'"),
        (["--data-root", str(data), "--executor", "slurm", "--slurm-extra", "account"], None, "--slurm-extra: expected KEY=VALUE"),
        (["--data-root", str(data), "--executor", "slurm", "--slurm-partition", "cpu", "--slurm-gpus-per-job", "0",
          "--slurm-cpus-per-job", "2", "--slurm-time", "2:00:00"], None,
         "--slurm-time 2:00:00: partition cpu allows at most 60 minutes"),
        (["--status", "--output-root", str(tmp_path / "out")], None, "no sweep in"),
    ]  # fmt: skip
    for args, env, message in cases:
        args = [*args, "--output-root", str(tmp_path / "out")]
        result = sweep(*args, env=env) if env else sweep_here(*args)  # the console script without SLURM
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
        assert message in result.stderr, result.stderr
    calls = (slurm / "calls").read_text().split() if (slurm / "calls").exists() else []
    assert "sbatch" not in calls and not (tmp_path / "out").exists()  # sinfo may have been asked


def test_no_controller_is_one_line_and_submits_nothing(slurm, sweep_here, tmp_path):
    """sbatch and srun installed, but sinfo reaches no controller (a client without a configuration)."""
    data = blender_stubs(tmp_path / "data", ["lego"])
    (slurm / "controller_down").touch()
    result = sweep_here(
        "--data-root", str(data), "--executor", "slurm", "--output-root", str(tmp_path / "out")
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr == (
        "error: no SLURM controller answers (sinfo: sinfo: fatal: Could not establish a configuration "
        "source): nothing submitted\n"
    )
    calls = (slurm / "calls").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["sinfo"] and not (tmp_path / "out").exists()


def test_help_shows_an_example_for_each_executor():
    result = sweep("-h")
    assert result.returncode == 0 and result.stderr == ""
    text = result.stdout
    assert "SLURM" in text
    examples = text.split("examples:")[1]
    assert "ns-internals-sweep --data-root data/blender" in examples  # the workstation (local) one
    assert "--executor slurm --slurm-partition" in " ".join(examples.split()).replace("\\ ", "")
    assert "ns-internals-sweep --status --output-root" in examples
    for option in ("--stages", "--methods", "--dataparser", "--eval-args", "--slurm-array-parallelism"):
        assert option in text


# ---- the local executor, end to end ----------------------------------------------------------------
@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """A sweep on a tiny scene, then the same command again: (output root, first, second, mtimes)."""
    work = tmp_path_factory.mktemp("sweep")
    generate_blender_scene(work / "data" / "tiny", width=16, height=16, num_train=4, num_val=2, num_test=2)
    (work / "torch_home").mkdir()
    out = work / "out"
    args = [
        "--data-root", str(work / "data"), "--dataparser", "blender-data", "--methods", "activation-nerf",
        "--stages", "train", "eval", "collect", "--output-root", str(out), "--executor", "local",
        f"--eval-args={TINY_EVAL}", "--", "--machine.device-type", "cpu", *TINY_TRAIN,
    ]  # fmt: skip
    env = {"TORCH_HOME": str(work / "torch_home"), "CUDA_VISIBLE_DEVICES": ""}
    first = sweep(*args, env=env)
    run = out / "tiny" / "activation-nerf" / "sweep"
    files = [run / "nerfstudio_models" / "step-000000003.ckpt", run / "eval" / "summary.json"]
    mtimes = {p: p.stat().st_mtime_ns for p in files if p.exists()}
    first_jobs = (
        json.loads((out / "_sweep" / "jobs.json").read_text())["jobs"] if first.returncode == 0 else []
    )
    second = sweep(*args, env=env)
    return out, first, first_jobs, second, mtimes


def test_local_sweep_trains_evaluates_and_collects(local_sweep):
    out, first, jobs, _, _ = local_sweep
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    run = out / "tiny" / "activation-nerf" / "sweep"
    assert (run / "nerfstudio_models" / "step-000000003.ckpt").is_file()
    assert [(j["stage"], j["state"]) for j in jobs] == [
        ("train", "done"),
        ("eval", "done"),
        ("collect", "done"),
    ]
    for job in jobs:  # each job's log under the output root, with the command it ran
        log = Path(job["log"])
        assert log.parent == out.absolute() / "_sweep" / "logs"
        assert f"+ {job['command'][0]} " in log.read_text()
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["num_images"] == 2 and list(summary["experiments"]) == ["layer_00_ups_0_fct_std_half"]
    results = json.loads((out / "results.json").read_text())
    per_scene = {r["experiment"]: r for r in results["per_scene"]}
    exp = summary["experiments"]["layer_00_ups_0_fct_std_half"]
    assert per_scene["layer_00_ups_0_fct_std_half"]["psnr"] == pytest.approx(exp["psnr"])
    assert per_scene["base"]["psnr"] == pytest.approx(summary["base"]["psnr"])
    assert per_scene["base"]["scene"] == "tiny" and per_scene["base"]["eval_dir"] == "eval"
    md = (out / "results.md").read_text()
    assert (
        "## Per scene" in md
        and f"| tiny | activation-nerf | blender | eval | base | {summary['base']['psnr']:.2f} |" in md
    )
    assert "tiny" in first.stdout and "done" in first.stdout  # the table


def test_local_sweep_rerun_trains_nothing_again(local_sweep):
    out, first, _, second, mtimes = local_sweep
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-3000:]
    assert len(mtimes) == 2 and all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    jobs = json.loads((out / "_sweep" / "jobs.json").read_text())["jobs"]
    assert [(j["stage"], j["state"]) for j in jobs] == [
        ("train", "skipped"), ("eval", "skipped"), ("collect", "done"),
    ]  # fmt: skip
    assert jobs[0]["note"] == "done: step-000000003.ckpt" and jobs[0]["job_id"] is None
    assert "skipped" in second.stdout


# ---- eval.py --resume -----------------------------------------------------------------------------
def test_eval_resume_continues_at_the_next_image_with_the_same_settings(local_sweep, tmp_path):
    out, first, *_ = local_sweep
    assert first.returncode == 0
    config = out / "tiny" / "activation-nerf" / "sweep" / "config.yml"

    def cfg(**kwargs) -> ActivationDerivedDensity:
        base = dict(load_config=config, layer=(0,), fct=(1,), max_images=2, device="cpu")
        return ActivationDerivedDensity(**{**base, "output_dir": str(tmp_path / "ev"), **kwargs})

    evaluate(cfg())
    ev = tmp_path / "ev"
    # as an evaluation killed while rendering its second image leaves its folder (files are written whole)
    (ev / "summary.json").unlink()
    for path in sorted((ev / "001").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (ev / "001").rmdir()
    kept = (ev / "000" / "stats.json").stat().st_mtime_ns

    with pytest.raises(InputError, match="is not empty"):
        evaluate(cfg())  # without --resume
    with pytest.raises(InputError, match=r"other settings \(fct, experiments\)"):
        evaluate(cfg(fct=(0,), resume=True))
    with pytest.raises(InputError, match="choose one"):
        evaluate(cfg(resume=True, overwrite=True))
    summary = evaluate(cfg(resume=True))
    assert (ev / "000" / "stats.json").stat().st_mtime_ns == kept  # not rendered again
    images = [json.loads((ev / f"00{i}" / "stats.json").read_text()) for i in (0, 1)]
    name = "layer_00_ups_0_fct_std_half"
    assert summary["num_images"] == 2
    assert summary["experiments"][name]["psnr"] == pytest.approx(
        (images[0][name]["metrics"]["psnr"] + images[1][name]["metrics"]["psnr"]) / 2
    )
    assert json.loads((ev / "summary.json").read_text()) == summary

    (ev / "settings.json").unlink()  # an evaluation folder that records no settings
    with pytest.raises(InputError, match="no readable settings.json"):
        evaluate(cfg(resume=True))


def test_local_sweep_a_failed_training_cancels_its_eval(tmp_path):
    data = blender_stubs(tmp_path / "data", ["lego"])
    out = tmp_path / "out"
    result = sweep(
        "--data-root", str(data), "--output-root", str(out), "--stages", "train", "eval",
        "--", "--no-such-flag", env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert result.returncode == 1 and "2 job(s) failed or were cancelled" in result.stdout
    train, eval_ = json.loads((out / "_sweep" / "jobs.json").read_text())["jobs"]
    assert (train["state"], eval_["state"]) == ("failed", "cancelled") and eval_["job_id"] is None
    assert eval_["note"] == "its train failed" and train["note"] == f"see {train['log']}"
    log = Path(train["log"]).read_text() + Path(train["log"]).with_suffix(".err").read_text()
    assert "--no-such-flag" in log and "ns-train exited with status" in log


def test_local_executor_uses_the_visible_gpus_else_nvidia_smi(tmp_path, monkeypatch):
    from nerfinternals.sweep import local_gpus

    smi = tmp_path / "nvidia-smi"
    smi.write_text('#!/bin/sh\n[ "$1" = --query-gpu=index ] && printf "0\\n1\\n2\\n"\n')
    smi.chmod(0o755)
    monkeypatch.setenv("NVIDIA_SMI", str(smi))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert local_gpus() == [0, 1, 2]  # one job per GPU at a time
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert local_gpus() == [2, 0]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert local_gpus() == []  # the CPU: one job at a time
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("NVIDIA_SMI", str(tmp_path / "none"))
    assert local_gpus() == []
