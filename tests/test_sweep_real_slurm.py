"""``ns-internals-sweep --executor slurm`` on a real SLURM: the one-node cluster of
``scripts/slurm_one_node.sh`` (``.ci/run`` starts it and exports ``SLURM_CONF``). A sweep of a tiny
scene and of one whose training fails (train -> eval -> collect), a rerun, and requests the cluster
refuses. Skipped when no controller answers (no SLURM here: ``tests/test_sweep.py``'s stand-ins cover
what one node cannot, arrays across nodes and GPUs)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from nerfinternals.data.synthetic import generate_blender_scene
from tests.test_sweep import TINY_EVAL, TINY_TRAIN, sweep


def controller_answers() -> bool:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    try:
        return subprocess.run(["sinfo", "--noheader"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


pytestmark = pytest.mark.skipif(
    not controller_answers(), reason="no SLURM controller answers (scripts/slurm_one_node.sh start)"
)
# What one CPU node can run: no GPU, one CPU a job (the two trainings at once on a 2-core node).
CPU_JOBS = ["--executor", "slurm", "--slurm-gpus-per-job", "0", "--slurm-cpus-per-job", "1", "--slurm-time", "20"]  # fmt: skip
ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "SUSPENDED")


def queued(job_ids: list[str]) -> list[str]:
    """Lines of squeue for those jobs still pending or running."""
    mains = sorted({j.split("_")[0] for j in job_ids})
    if not mains:
        return []
    out = subprocess.run(
        ["squeue", "-h", "-t", ",".join(ACTIVE), "-o", "%i %T %r", "-j", ",".join(mains)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return out.splitlines()


def wait_for(job_ids: list[str], timeout: float = 900) -> None:
    end = time.monotonic() + timeout
    while queued(job_ids):
        assert time.monotonic() < end, f"still queued after {timeout} s: {queued(job_ids)}"
        time.sleep(2)


def jobs_of(out: Path) -> dict[tuple[str, str], dict]:
    return {
        (j["stage"], j["scene"]): j for j in json.loads((out / "_sweep" / "jobs.json").read_text())["jobs"]
    }


def all_queued_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=60).stdout
    return set(out.split())


@pytest.fixture(scope="module")
def cluster_sweep(tmp_path_factory):
    """A sweep of ``tiny`` and ``broken`` (one of its training images is not a PNG: its training fails
    while loading the data, after the sweep's checks), waited for, then ``--status``."""
    work = tmp_path_factory.mktemp("real_slurm")
    data = work / "data"
    for scene in ("tiny", "broken"):
        generate_blender_scene(data / scene, width=16, height=16, num_train=4, num_val=2, num_test=2)
    frame = json.loads((data / "broken" / "transforms_train.json").read_text())["frames"][-1]
    (data / "broken" / f"{frame['file_path']}.png").write_bytes(b"not a png")
    out = work / "out"
    args = [
        "--data-root", str(data), "--methods", "activation-nerf", "--output-root", str(out), *CPU_JOBS,
        f"--eval-args={TINY_EVAL}", "--", *TINY_TRAIN,
    ]  # fmt: skip
    env = {"TORCH_HOME": str(work / "torch_home"), "CUDA_VISIBLE_DEVICES": ""}
    first = sweep(*args, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    ids = [j["job_id"] for j in jobs_of(out).values() if j["job_id"]]
    wait_for(ids)
    status = sweep("--status", "--output-root", str(out))
    return out, args, env, ids, status


def test_a_failed_training_cancels_its_eval_and_collect_lists_it(cluster_sweep):
    out, _, _, ids, status = cluster_sweep
    assert status.returncode == 0, status.stderr
    jobs = jobs_of(out)  # as --status recorded them
    states = {key: j["state"] for key, j in jobs.items()}
    assert states == {
        ("train", "tiny"): "COMPLETED",
        ("train", "broken"): "FAILED",
        ("eval", "tiny"): "COMPLETED",
        ("eval", "broken"): "CANCELLED",  # kill-on-invalid-dep: not pending for ever
        ("collect", "—"): "COMPLETED",
    }, status.stdout
    failed = jobs[("train", "broken")]
    log = Path(failed["note"].removeprefix("see "))
    assert "ns-train exited with status 1" in log.read_text(errors="replace")  # the job's own error log
    assert jobs[("eval", "broken")]["note"] == "not run: its train failed"
    assert "FAILED" in status.stdout and "CANCELLED" in status.stdout
    assert not queued(ids)
    results = (out / "results.md").read_text()
    assert "tiny" in results and "broken" in results.split("Runs without an evaluation summary")[-1], results


def test_status_keeps_final_states_without_accounting(cluster_sweep):
    """No sacct on this cluster: squeue -t all, then the jobs' result files, then what was recorded."""
    out, _, _, _, _ = cluster_sweep
    again = sweep("--status", "--output-root", str(out))
    assert again.returncode == 0
    assert {k: j["state"] for k, j in jobs_of(out).items()}[("train", "broken")] == "FAILED"


def test_rerun_trains_nothing_finished_again(cluster_sweep):
    out, args, env, _, _ = cluster_sweep
    scenes = args.index("--methods")
    rerun = [*args[:scenes], "--scenes", "tiny", *args[scenes:]]
    ckpt = out / "tiny" / "activation-nerf" / "sweep" / "nerfstudio_models" / "step-000000003.ckpt"
    before = ckpt.stat().st_mtime_ns
    result = sweep(*rerun, env=env)
    assert result.returncode == 0, result.stderr
    jobs = jobs_of(out)
    assert jobs[("train", "tiny")]["state"] == "skipped" and jobs[("eval", "tiny")]["state"] == "skipped"
    wait_for([jobs[("collect", "—")]["job_id"]])
    assert ckpt.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--slurm-partition", "nope"], "--slurm-partition nope: no such partition"),
        (["--slurm-gpus-per-job", "1"], "have no GPUs (no GRES gpu)"),
        (["--slurm-cpus-per-job", "4096"], "--slurm-cpus-per-job 4096: the nodes of partition"),
        (["--slurm-mem", "1024T"], "--slurm-mem 1024T: the nodes of partition"),
        (["--slurm-extra", "constraint=nosuchfeature"], "sbatch refused the train job(s): sbatch: error:"),
    ],
)
def test_an_impossible_request_is_one_line_and_queues_nothing(tmp_path, flags, message):
    generate_blender_scene(
        tmp_path / "data" / "tiny", width=48, height=48, num_train=1, num_val=1, num_test=1
    )
    before = all_queued_ids()
    out = tmp_path / "out"
    base = ["--data-root", str(tmp_path / "data"), "--output-root", str(out), *CPU_JOBS]
    result = sweep(*base, *flags)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert all_queued_ids() <= before
    logs = out / "_sweep" / "logs"
    assert not logs.exists() or not [p for p in logs.rglob("*") if p.is_file()], list(logs.rglob("*"))
