"""``ns-internals-sweep``: train, evaluate and collect every scene x method of a data root, on this
machine or on SLURM, through submitit; resumable.

Stages (any subset, run in this order):

- ``train``: ``ns-train METHOD ... DATAPARSER --data DATA_ROOT/SCENE`` into
  ``OUTPUT_ROOT/SCENE/METHOD/sweep/``; skipped when the run's final checkpoint (the step
  ``max_num_iterations - 1`` of its config.yml, or later) exists.
- ``eval``: ``eval.py --load-config RUN/config.yml --output-dir EVAL_DIR --resume EVAL_ARGS``;
  skipped when ``RUN/EVAL_DIR/summary.json`` exists for the same settings (eval.py's settings.json);
  a half-written one resumes at its next image. An eval folder holding other settings is an error
  before anything is submitted: settings are never mixed.
- ``collect``: ``scripts/collect_results.py OUTPUT_ROOT``: per-scene and mean tables.

The job list (ids, states, logs) is kept in ``OUTPUT_ROOT/_sweep/jobs.json`` and the job logs in
``OUTPUT_ROOT/_sweep/logs/``. Locally the jobs run one per GPU at a time (one at a time without a
GPU) under a live table; on SLURM the request is checked against ``sinfo`` first, the trainings are
one job array, each eval depends on its own training (``afterok``, cancelled when it fails), the
collect job on all evals (``afterany``), jobs.json is written after each submission, and ``--status``
shows the table from ``sacct``, else ``squeue -t all`` and the jobs' result files.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
COLLECT_SCRIPT = REPO / "scripts" / "collect_results.py"
METHODS = (
    "activation-nerf",
    "activation-mipnerf",
    "activation-nerfacto",
    "vanilla-nerf",
    "mipnerf",
    "nerfacto",
)
# dataparser -> the file every scene folder of that format holds
SCENE_FILES = {
    "blender-data": "transforms_train.json",
    "llff-data": "poses_bounds.npy",
    "nerfstudio-data": "transforms.json",
}
STAGES = ("train", "eval", "collect")
TIMESTAMP = "sweep"  # every run of the sweep is OUTPUT_ROOT/SCENE/METHOD/sweep
STATE_DIR = "_sweep"
DEFAULT_EVAL_ARGS = "--layer 0 --fct 1 --rescale 0.125 --max-images 4"
# the eval flags the sweep sets itself
SWEEP_EVAL_FLAGS = ("--load-config", "--output-dir", "--overwrite", "--resume", "--no-resume")
ACTIVE_SLURM_STATES = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING"}
LOCAL_TIMEOUT_MIN = 60 * 24 * 30  # submitit's local executor kills a job after timeout_min (default 2)

EPILOG = """\
examples:
  # A workstation: every scene folder under data/blender, two methods; the jobs run one per GPU
  # (one at a time on the CPU) under a live table of their states; the same command again skips
  # what is done and resumes a half-written eval.
  ns-internals-sweep --data-root data/blender --dataparser blender-data \\
      --methods activation-nerf activation-mipnerf --output-root outputs/blender \\
      --eval-args="--layer 0 1 2 --fct 1" -- --max-num-iterations 30000

  # SLURM (sbatch, srun and sinfo on PATH; the output root on a shared file system): the
  # trainings as one job array (8 at a time), each eval waiting on its own training (afterok),
  # collect after all; the command returns once the jobs are submitted.
  ns-internals-sweep --data-root /shared/nerf_llff_data --dataparser llff-data \\
      --methods activation-nerfacto --output-root /shared/sweeps/llff --executor slurm \\
      --slurm-partition gpu --slurm-gpus-per-job 1 --slurm-time 12:00:00 --slurm-cpus-per-job 8 \\
      --slurm-mem 32G --slurm-array-parallelism 8 --slurm-extra account=myproject \\
      --dataparser-args="--downscale-factor 4"
  ns-internals-sweep --status --output-root /shared/sweeps/llff   # the table: sacct, else squeue

Options taking a list of flags (--eval-args, --dataparser-args) need the = form. Everything after
`--` goes to every ns-train, after the sweep's own flags (so it overrides them). Run folders:
OUTPUT_ROOT/SCENE/METHOD/sweep; tables: OUTPUT_ROOT/results.{md,json}; docs/sweeps.md has more.
"""


class SweepError(Exception):
    """Bad input: one ``error:`` line, nothing submitted."""


# ---- the jobs ------------------------------------------------------------------------------------
@dataclass
class Job:
    """One step of the sweep and what became of it."""

    stage: str
    scene: str
    method: str
    command: list[str] = field(default_factory=list)
    state: str = "pending"  # pending, skipped, submitted, running, done, failed, cancelled, ...
    note: str = ""
    job_id: str | None = None
    log: str | None = None
    started: float | None = None
    ended: float | None = None
    elapsed: str | None = None  # SLURM's, from --status
    depends: list[int] = field(default_factory=list)  # indices into the job list

    def elapsed_text(self) -> str:
        if self.elapsed:
            return self.elapsed
        if self.started is None:
            return ""
        seconds = int((self.ended or time.time()) - self.started)
        return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run_step(command: list[str]) -> None:
    """The function every job runs (pickled by submitit): ``command``, its output in the job's log."""
    print("+ " + shlex.join(command), flush=True)
    code = subprocess.call(command)
    if code:
        raise RuntimeError(f"{Path(command[0]).name} exited with status {code}")


# ---- finding what is done ---------------------------------------------------------------------------
def run_dir(output_root: Path, scene: str, method: str) -> Path:
    return output_root / scene / method / TIMESTAMP


def _checkpoints(run: Path) -> list[tuple[int, Path]]:
    found = []
    for path in (run / "nerfstudio_models").glob("step-*.ckpt"):
        match = re.fullmatch(r"step-(\d+)\.ckpt", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def final_checkpoint(run: Path) -> Path | None:
    """The run's checkpoint of its last step (``max_num_iterations - 1`` in config.yml, or later)."""
    try:
        text = (run / "config.yml").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"^max_num_iterations: (\d+)\s*$", text, re.M)
    ckpts = _checkpoints(run)
    if not match or not ckpts or ckpts[-1][0] < int(match.group(1)) - 1:
        return None
    return ckpts[-1][1]


def eval_state(run: Path, eval_dir: str, flags: dict) -> str:
    """ "done" (summary.json with the same settings), "todo" (nothing there yet, or half-written with the
    same settings: resumed); SweepError when the folder holds anything else."""
    folder = run / eval_dir
    if not folder.is_dir() or not any(folder.iterdir()):
        return "todo"
    try:
        stored = json.loads((folder / "settings.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise SweepError(
            f"{folder} holds an evaluation without a readable settings.json: remove it or choose "
            "another --eval-dir"
        ) from None
    differ = [k for k in flags if stored.get("flags", {}).get(k) != flags[k]]
    if differ:
        raise SweepError(
            f"{folder} holds an evaluation with other settings ({', '.join(differ)}): remove it or "
            "choose another --eval-dir"
        )
    return "done" if (folder / "summary.json").is_file() else "todo"


# ---- the command line ---------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage + message
        raise SweepError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ns-internals-sweep",
        description="Train, evaluate and collect every scene x method under a data root, on this machine\n"
        "or on a SLURM cluster (through submitit). A rerun skips what is done and resumes what was\n"
        "interrupted.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="ns-internals-sweep --data-root DIR [options] [-- NS_TRAIN_ARGS ...]\n"
        "       ns-internals-sweep --status --output-root DIR",
    )
    add = parser.add_argument
    add("--data-root", type=Path, metavar="DIR", help="folder with one folder per scene")
    add(
        "--dataparser",
        choices=sorted(SCENE_FILES),
        default="blender-data",
        help="format of the scenes (default: blender-data)",
    )
    add("--scenes", nargs="+", metavar="SCENE", help="scene folders to use (default: all)")
    add("--methods", nargs="+", choices=METHODS, default=["activation-nerf"], metavar="METHOD",
        help=f"methods to train and evaluate, any of: {', '.join(METHODS)} (default: activation-nerf)")  # fmt: skip
    add("--stages", nargs="+", choices=STAGES, default=list(STAGES), metavar="STAGE",
        help="stages to run, any of train eval collect, in that order (default: all)")  # fmt: skip
    add(
        "--output-root",
        type=Path,
        default=Path("outputs"),
        metavar="DIR",
        help="where runs, logs and tables go (default: outputs)",
    )
    add("--executor", choices=("local", "slurm"), default="local", help="where the jobs run (default: local)")
    add("--eval-args", default=DEFAULT_EVAL_ARGS, metavar='"FLAGS"',
        help=f'eval.py flags, one string with the = form (default: "{DEFAULT_EVAL_ARGS}": 4 images at 1/8 resolution, for a CPU)')  # fmt: skip
    add(
        "--eval-dir",
        default="eval",
        metavar="NAME",
        help="eval.py --output-dir, relative to each run (default: eval)",
    )
    add(
        "--dataparser-args",
        default="",
        metavar='"FLAGS"',
        help="flags after the dataparser sub-command, one string (= form)",
    )
    add("--status", action="store_true", help="print the jobs of the sweep in --output-root and exit")
    slurm = parser.add_argument_group("SLURM (--executor slurm)")
    add = slurm.add_argument
    add("--slurm-partition", metavar="NAME", help="partition (default: the cluster's)")
    add("--slurm-gpus-per-job", type=int, metavar="N", default=1, help="GPUs per job (default: 1)")
    add(
        "--slurm-time",
        default="24:00:00",
        metavar="TIME",
        help="time limit per job: MINUTES, H:MM:SS or D-H:MM:SS (default: 24:00:00)",
    )
    add("--slurm-cpus-per-job", type=int, metavar="N", default=8, help="CPUs per job (default: 8)")
    add("--slurm-mem", metavar="MEM", help="memory per job, e.g. 32G (default: the cluster's)")
    add(
        "--slurm-array-parallelism",
        type=int,
        metavar="N",
        default=8,
        help="trainings running at once (default: 8)",
    )
    add("--slurm-extra", action="append", default=[], metavar="KEY=VALUE",
        help="any other sbatch option, e.g. account=proj or constraint=a100 (repeatable)")  # fmt: skip
    return parser


def slurm_minutes(text: str) -> int:
    """SLURM's time formats (MINUTES, MM:SS, H:MM:SS, D-H, D-H:MM, D-H:MM:SS) in whole minutes."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise SweepError(f"--slurm-time: cannot read {text!r} (MINUTES, H:MM:SS or D-H:MM:SS)")
    days, a, b, c = (int(g) if g else None for g in match.groups())
    if days is not None:  # D-H[:MM[:SS]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # H:MM:SS
        seconds = a * 3600 + b * 60 + c
    elif b is not None:  # MM:SS
        seconds = a * 60 + b
    else:
        seconds = a * 60
    if seconds <= 0:
        raise SweepError(f"--slurm-time must be positive, got {text!r}")
    return math.ceil(seconds / 60)


def _split(text: str, flag: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as err:
        raise SweepError(f"{flag}: {err}") from None


def eval_flags(eval_args: list[str]) -> dict:
    """The settings of eval.py ``eval_args`` (as its settings.json records them); SweepError if bad."""
    import tyro

    from nerfinternals.common import _tyro_message
    from nerfinternals.eval import ActivationDerivedDensity, _check, settings_flags
    from nerfinternals.loading import InputError

    for arg in eval_args:
        if arg.split("=")[0] in SWEEP_EVAL_FLAGS:
            raise SweepError(f"--eval-args: {arg.split('=')[0]} is set by the sweep (see --eval-dir)")
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            cfg = tyro.cli(ActivationDerivedDensity, args=["--load-config", "config.yml", *eval_args])
    except SystemExit:
        raise SweepError(f"--eval-args: {_tyro_message(captured.getvalue())}") from None
    try:
        _check(cfg)  # the values eval.py refuses before loading a model
    except InputError as err:
        raise SweepError(f"--eval-args: {err}") from None
    return settings_flags(cfg)


def eval_image_size(dataparser: str, dataparser_args: list[str], data: Path) -> tuple[int, int]:
    """(height, width) of a scene's smallest eval image, as the dataparser ns-train runs reads it
    (nerfstudio's own downscale rules); SweepError when it cannot read the scene."""
    import copy

    import tyro
    from nerfstudio.configs.dataparser_configs import all_dataparsers

    from nerfinternals.common import _tyro_message

    captured = io.StringIO()
    with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
        try:
            config = tyro.cli(
                type(all_dataparsers[dataparser]),
                default=copy.deepcopy(all_dataparsers[dataparser]),
                args=dataparser_args,
            )
        except SystemExit:
            raise SweepError(f"--dataparser-args: {_tyro_message(captured.getvalue())}") from None
        config.data = data
        try:
            cameras = config.setup().get_dataparser_outputs("test").cameras
        except Exception as err:  # whatever the dataparser raises on a scene it cannot read
            said = " ".join(str(err).split())[:300]
            raise SweepError(
                f"scene {data}: {dataparser} cannot read it ({type(err).__name__}: {said})"
            ) from None
    return int(cameras.height.min()), int(cameras.width.min())


def check_eval_sizes(args, scenes: list[str], dataparser_args: list[str], rescale: float) -> None:
    """Refuse eval settings that render a scene's eval images too small for the metrics, before any job."""
    from nerfinternals.common import check_render_size
    from nerfinternals.loading import InputError

    for scene in scenes:
        height, width = eval_image_size(args.dataparser, dataparser_args, args.data_root.absolute() / scene)
        try:
            check_render_size(height, width, rescale, f"the eval images of {scene}")
        except InputError as err:
            raise SweepError(f"--eval-args: {err}") from None


def scenes_of(args) -> list[str]:
    root: Path = args.data_root
    if root is None:
        raise SweepError("--data-root is required (a folder with one folder per scene)")
    if not root.is_dir():
        raise SweepError(f"data root not found: {root}")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise SweepError(f"no scene folders in {root} (expected one folder per scene)")
    scenes = args.scenes or found
    required = SCENE_FILES[args.dataparser]
    for scene in scenes:
        if scene not in found:
            raise SweepError(f"scene {scene!r} not found in {root} (scenes: {', '.join(found)})")
        if not (root / scene / required).is_file():
            raise SweepError(
                f"scene {root / scene} is not in the {args.dataparser} format: it has no {required}"
            )
    return scenes


def slurm_extra(items: list[str]) -> dict[str, str]:
    extra = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise SweepError(f"--slurm-extra: expected KEY=VALUE, got {item!r}")
        extra[key] = value
    return extra


def check_slurm_args(args) -> None:
    """The SLURM flags, then the cluster: a controller answers and the partition can run such a job."""
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if missing:
        raise SweepError(
            f"--executor slurm needs {' and '.join(missing)} on PATH (run it on a SLURM login node)"
        )
    for name in ("slurm_gpus_per_job", "slurm_cpus_per_job", "slurm_array_parallelism"):
        value = getattr(args, name)
        if value < (0 if name == "slurm_gpus_per_job" else 1):
            raise SweepError(f"--{name.replace('_', '-')} must be positive, got {value}")
    memory_mb(args.slurm_mem)
    slurm_minutes(args.slurm_time)
    slurm_extra(args.slurm_extra)
    check_resources(args, cluster_partitions())


def memory_mb(text: str | None) -> float | None:
    """``--slurm-mem`` (SLURM's units: a number, K / M / G / T; M when none) in MB."""
    if not text:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)B?", text.strip(), re.I)
    if not match:
        raise SweepError(f"--slurm-mem: cannot read {text!r} (e.g. 32G or 64000M)")
    return float(match.group(1)) * 1024.0 ** ("KMGT".index(match.group(2).upper() or "M") - 1)


@dataclass
class Partition:
    """What ``sinfo`` says of a partition: its largest node and its limits."""

    name: str
    default: bool
    up: bool
    cpus: int  # per node
    memory_mb: int  # per node
    gpus: int  # per node (GRES gpu)
    max_minutes: int | None  # None: infinite


def _gpus(gres: str) -> int:
    """GPUs of a node's GRES (``gpu:4``, ``gpu:a100:4(S:0-1)``, several comma-separated; ``(null)``: 0)."""
    count = 0
    for item in re.sub(r"\([^)]*\)", "", gres).split(","):
        parts = item.strip().split(":")
        if parts[0] == "gpu":
            count += int(parts[-1]) if parts[-1].isdigit() else 1
    return count


def _leading_int(text: str) -> int:
    """sinfo's counts: ``21694+`` (nodes of several sizes) -> 21694."""
    return int(re.match(r"\d*", text).group() or 0)


def cluster_partitions(timeout: float = 30) -> dict[str, Partition]:
    """The cluster's partitions from ``sinfo``; SweepError (nothing submitted) when no controller answers
    (a client installed without a configuration, a controller that is down or unreachable)."""
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        raise SweepError("--executor slurm needs sinfo on PATH to reach the SLURM controller")
    try:
        answer = subprocess.run(
            [sinfo, "--noheader", "--format=%P|%a|%c|%m|%G|%l"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise SweepError(
            f"no SLURM controller answered sinfo within {timeout:.0f} s: nothing submitted"
        ) from None
    if answer.returncode != 0:
        said = " ".join((answer.stderr or answer.stdout).split()) or f"exit status {answer.returncode}"
        raise SweepError(f"no SLURM controller answers (sinfo: {said}): nothing submitted")
    found: dict[str, Partition] = {}
    for line in answer.stdout.splitlines():  # one line per partition and kind of node
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != 6 or not fields[0]:
            continue
        name, avail, cpus, mem, gres, limit = fields
        minutes = None if limit in ("infinite", "UNLIMITED", "n/a") else slurm_minutes(limit)
        part = Partition(
            name.rstrip("*"),
            name.endswith("*"),
            avail == "up",
            _leading_int(cpus),
            _leading_int(mem),
            _gpus(gres),
            minutes,
        )
        if part.name in found:  # the largest node of the partition
            old = found[part.name]
            part.cpus, part.memory_mb = max(part.cpus, old.cpus), max(part.memory_mb, old.memory_mb)
            part.gpus, part.up = max(part.gpus, old.gpus), part.up or old.up
        found[part.name] = part
    return found


def check_resources(args, partitions: dict[str, Partition]) -> None:
    """Refuse what the partition cannot run: a job asking more than its largest node has would stay
    PENDING for ever (PartitionConfig), or be refused by sbatch after part of the sweep is queued."""
    names = ", ".join(partitions) or "none"
    if args.slurm_partition:
        part = partitions.get(args.slurm_partition)
        if part is None:
            raise SweepError(
                f"--slurm-partition {args.slurm_partition}: no such partition (the cluster has: {names})"
            )
    else:
        part = next((p for p in partitions.values() if p.default), None)
        if part is None:
            raise SweepError(
                f"the cluster has no default partition: choose one with --slurm-partition ({names})"
            )
    where = f"partition {part.name}"
    if not part.up:
        raise SweepError(f"{where} is not up (sinfo): choose another with --slurm-partition ({names})")
    if args.slurm_gpus_per_job > part.gpus:
        has = f"{part.gpus} GPU(s)" if part.gpus else "no GPUs (no GRES gpu)"
        raise SweepError(
            f"--slurm-gpus-per-job {args.slurm_gpus_per_job}: the nodes of {where} have {has}"
            + (" (--slurm-gpus-per-job 0 trains and evaluates on the CPU)" if not part.gpus else "")
        )
    if args.slurm_cpus_per_job > part.cpus:
        raise SweepError(
            f"--slurm-cpus-per-job {args.slurm_cpus_per_job}: the nodes of {where} have at most {part.cpus} CPUs"
        )
    mem = memory_mb(args.slurm_mem)
    if mem is not None and part.memory_mb and mem > part.memory_mb:
        raise SweepError(
            f"--slurm-mem {args.slurm_mem}: the nodes of {where} have at most {part.memory_mb} MB"
        )
    minutes = slurm_minutes(args.slurm_time)
    if part.max_minutes is not None and minutes > part.max_minutes:
        raise SweepError(f"--slurm-time {args.slurm_time}: {where} allows at most {part.max_minutes} minutes")


# ---- planning ----------------------------------------------------------------------------------
def local_gpus() -> list[int]:
    """GPU indices this machine offers (CUDA_VISIBLE_DEVICES if set, else nvidia-smi's)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(g) for g in visible.split(",") if g.strip().isdigit()]
    smi = shutil.which(os.environ.get("NVIDIA_SMI", "nvidia-smi"))
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(line) for line in out.split() if line.strip().isdigit()]


def _ns_train() -> str:
    beside = Path(sys.executable).parent / "ns-train"
    return str(beside) if beside.exists() else "ns-train"


def plan(args, scenes: list[str], train_args: list[str], eval_args: list[str], cpu: bool) -> list[Job]:
    """The sweep's jobs in order (trainings, evals, collect), finished ones marked skipped."""
    out: Path = args.output_root.absolute()
    data: Path = args.data_root.absolute() if args.data_root else None
    known = load_eval_args(out)
    dataparser_args = _split(args.dataparser_args, "--dataparser-args")
    flags: dict = {}
    if "eval" in args.stages:
        flags = eval_flags(eval_args)
        check_eval_sizes(args, scenes, dataparser_args, flags["rescale"])

    def evaluated(run: Path, key: str) -> bool:
        """Whether RUN/EVAL_DIR holds a finished evaluation with these settings (SweepError: other ones)."""
        if known.get(key) == eval_args and (run / args.eval_dir / "summary.json").is_file():
            return True
        return eval_state(run, args.eval_dir, flags) == "done"

    jobs: list[Job] = []
    trainings: dict[tuple[str, str], int] = {}
    for scene in scenes if "train" in args.stages else []:
        for method in args.methods:
            done = final_checkpoint(run_dir(out, scene, method))
            command = [
                _ns_train(), method,
                "--output-dir", str(out), "--experiment-name", scene, "--timestamp", TIMESTAMP,
                "--vis", "tensorboard", "--viewer.quit-on-train-completion", "True",
                *(["--machine.device-type", "cpu"] if cpu else []),
                *train_args,
                args.dataparser, "--data", str(data / scene), *dataparser_args,
            ]  # fmt: skip
            job = Job("train", scene, method, command)
            if done:
                job.state, job.note = "skipped", f"done: {done.name}"
            trainings[(scene, method)] = len(jobs)
            jobs.append(job)
    evals = []
    if "eval" in args.stages:
        for scene in scenes:
            for method in args.methods:
                run = run_dir(out, scene, method)
                command = [
                    sys.executable, "-m", "nerfinternals.eval", "--load-config", str(run / "config.yml"),
                    "--output-dir", args.eval_dir, "--resume", *eval_args,
                ]  # fmt: skip
                job = Job("eval", scene, method, command)
                train = trainings.get((scene, method))
                trained = final_checkpoint(run) is not None
                if train is not None and jobs[train].state != "skipped":
                    job.depends = [train]
                elif not trained:
                    job.state, job.note = "skipped", "no finished training"
                key = f"{scene}/{method}/{args.eval_dir}"
                if job.state != "skipped" and evaluated(run, key):
                    job.state, job.note = "skipped", f"done: {args.eval_dir}/summary.json, same settings"
                evals.append(len(jobs))
                jobs.append(job)
    if "collect" in args.stages:
        command = [sys.executable, str(COLLECT_SCRIPT), str(out)]
        before = [i for i in (evals or range(len(jobs))) if jobs[i].state != "skipped"]
        jobs.append(Job("collect", "—", "—", command, depends=before))
    return jobs


# ---- the table and the job list -------------------------------------------------------------------
STATE_STYLES = {"done": "green", "skipped": "dim", "failed": "red", "running": "yellow", "cancelled": "red"}


def table(jobs: list[Job], title: str) -> Table:
    t = Table(title=title)
    for col in ("scene", "method", "stage", "state", "elapsed", "job", "note"):
        t.add_column(col, overflow="fold")
    for job in jobs:
        style = STATE_STYLES.get(job.state.lower(), "")
        t.add_row(
            job.scene,
            job.method,
            job.stage,
            f"[{style}]{job.state}[/]" if style else job.state,
            job.elapsed_text(),
            job.job_id or "",
            job.note,
        )
    return t


def state_path(output_root: Path) -> Path:
    return output_root / STATE_DIR / "jobs.json"


def save_jobs(output_root: Path, executor: str, jobs: list[Job]) -> None:
    """``_sweep/jobs.json``, written whole (a temporary file, then a rename)."""
    path = state_path(output_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"executor": executor, "jobs": [asdict(j) for j in jobs]}, indent=2) + "\n")
    os.replace(tmp, path)


def load_eval_args(output_root: Path) -> dict[str, list[str]]:
    """``SCENE/METHOD/EVAL_DIR`` -> the eval.py arguments the sweep last submitted for it."""
    try:
        return json.loads((output_root / STATE_DIR / "eval_args.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def save_eval_args(output_root: Path, jobs: list[Job], eval_args: list[str], eval_dir: str) -> None:
    known = load_eval_args(output_root)
    for job in jobs:
        if job.stage == "eval" and job.job_id:
            known[f"{job.scene}/{job.method}/{eval_dir}"] = eval_args
    path = output_root / STATE_DIR / "eval_args.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(known, indent=2) + "\n")
    os.replace(tmp, path)


def load_jobs(output_root: Path) -> tuple[str, list[Job]]:
    path = state_path(output_root)
    try:
        data = json.loads(path.read_text())
        return data["executor"], [Job(**j) for j in data["jobs"]]
    except FileNotFoundError:
        raise SweepError(f"no sweep in {output_root} (no {STATE_DIR}/jobs.json)") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise SweepError(f"unreadable {path}: {err}") from None


# ---- SLURM ---------------------------------------------------------------------------------------
def _expand_ids(job_id: str) -> list[str]:
    """``123_[0-2,5%4]`` (a pending array as sacct / squeue show it) -> 123_0, 123_1, 123_2, 123_5."""
    match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(%\d+)?\]", job_id)
    if not match:
        return [job_id]
    ids = []
    for part in match.group(2).split(","):
        lo, _, hi = part.partition("-")
        ids += [f"{match.group(1)}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return ids


FINAL_FAILED = {
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
}


def slurm_states(job_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """job id -> (state, elapsed, reason) from sacct (accounting), else squeue ``-t all`` (what the
    controller still holds: finished jobs for MinJobAge, 300 s by default)."""
    found: dict[str, tuple[str, str, str]] = {}
    if not job_ids:
        return found
    mains = sorted({j.split("_")[0] for j in job_ids})
    queries = (
        ["sacct", "-X", "-n", "-P", "-o", "JobID,State,Elapsed,Reason", "-j", ",".join(mains)],
        ["squeue", "-h", "-t", "all", "-o", "%i|%T|%M|%r", "-j", ",".join(mains)],
    )
    for command in queries:
        if all(j in found for j in job_ids) or shutil.which(command[0]) is None:
            continue
        try:
            answer = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        if answer.returncode:  # sacct without accounting: "Slurm accounting storage is disabled"
            continue
        for line in answer.stdout.splitlines():
            parts = [p.strip() for p in line.strip().split("|")]
            if len(parts) < 3:
                continue
            state = parts[1].split()[0] if parts[1] else "UNKNOWN"  # "CANCELLED by 123"
            reason = parts[3] if len(parts) > 3 and parts[3] not in ("None", "(null)") else ""
            for job_id in _expand_ids(parts[0]):
                found.setdefault(job_id, (state, parts[2], reason))
    return found


def result_state(job: Job) -> str | None:
    """COMPLETED / FAILED from the result file submitit writes beside the job's log when the job ends
    (what tells a final state once the controller has forgotten the job and there is no accounting)."""
    if not job.log:
        return None
    result = Path(job.log.replace("_log.out", "_result.pkl"))
    try:
        with result.open("rb") as f:
            outcome = pickle.load(f)[0]
    except (OSError, EOFError, pickle.UnpicklingError, IndexError, TypeError, AttributeError, ImportError):
        return None
    return {"success": "COMPLETED", "error": "FAILED"}.get(outcome)


def refresh_slurm(jobs: list[Job]) -> None:
    """The jobs' states from SLURM (or their result files), and a note on what a user should look at."""
    states = slurm_states([j.job_id for j in jobs if j.job_id])
    for job in jobs:
        if job.job_id in states:
            job.state, job.elapsed, reason = states[job.job_id]
            job.note = f"waiting: {reason}" if job.state == "PENDING" and reason else ""
        elif job.job_id and job.state.upper() not in FINAL_FAILED | {"COMPLETED"}:
            job.state = result_state(job) or job.state
        if job.state == "FAILED":
            job.note = f"see {job.log.replace('_log.out', '_log.err')}" if job.log else "failed"
        elif job.state == "CANCELLED" and job.depends:
            failed = [jobs[i] for i in job.depends if jobs[i].state.upper() in FINAL_FAILED]
            if failed:
                job.note = f"not run: its {failed[0].stage} {failed[0].state.lower()}"


def scancel(jobs: list[Job]) -> None:
    ids = sorted({j.job_id.split("_")[0] for j in jobs if j.job_id})
    if ids and shutil.which("scancel"):
        subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=60)
    for job in jobs:
        job.state, job.note = "CANCELLED", "cancelled by the sweep: a later submission was refused"


def submit_slurm(args, jobs: list[Job], folder: Path, save) -> None:
    """Submit the pending jobs, recording each (``save``) as soon as SLURM took it. A refused
    submission cancels the jobs submitted before it (nothing stays queued, jobs.json says so) and
    removes its own files from the log folder; SweepError."""
    import submitit

    executor = submitit.SlurmExecutor(folder=folder)
    common = {
        "gpus_per_node": args.slurm_gpus_per_job or None,
        "cpus_per_task": args.slurm_cpus_per_job,
        "time": slurm_minutes(args.slurm_time),
        "array_parallelism": args.slurm_array_parallelism,
    }
    if args.slurm_partition:
        common["partition"] = args.slurm_partition
    extra = slurm_extra(args.slurm_extra)
    if args.slurm_mem:
        extra.setdefault("mem", args.slurm_mem)
    taken: list[Job] = []

    def update(job_name: str, dependency: str | None = None, **overrides) -> None:
        more = (
            {**extra, "kill_on_invalid_dep": "yes"} if dependency else extra
        )  # a failed dependency: cancelled
        executor.update_parameters(
            **{**common, **overrides}, job_name=job_name, dependency=dependency, additional_parameters=more
        )

    def submit(batch: list[Job], call) -> None:
        before = set(folder.iterdir())
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's refusal too
                submitted = call()
        except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError, OSError) as err:
            for path in set(folder.iterdir()) - before:  # the refused job's pickle and script
                path.unlink(missing_ok=True)
            scancel(taken)
            for job in jobs:
                if job.state == "pending":
                    job.state = "not submitted"
            save()
            said = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())[:400]
            cancelled = f"; the {len(taken)} job(s) submitted before it were cancelled" if taken else ""
            raise SweepError(f"sbatch refused the {batch[0].stage} job(s): {said}{cancelled}") from None
        for job, sub in zip(batch, submitted, strict=True):
            job.job_id, job.log, job.state = str(sub.job_id), str(sub.paths.stdout), "submitted"
            taken.append(job)
        save()

    trainings = [j for j in jobs if j.stage == "train" and j.state == "pending"]
    if trainings:
        update("ns-train")
        submit(trainings, lambda: executor.map_array(run_step, [j.command for j in trainings]))
    for job in jobs:
        if job.state != "pending":
            continue
        ids = [jobs[i].job_id for i in job.depends if jobs[i].job_id]
        if job.stage == "eval":
            update("ns-internals-eval", f"afterok:{ids[0]}" if ids else None)
        else:  # collect: no GPU, after every eval whatever became of it
            update("ns-internals-collect", f"afterany:{':'.join(ids)}" if ids else None, gpus_per_node=None)
        submit([job], lambda job=job: [executor.submit(run_step, job.command)])


# ---- local ---------------------------------------------------------------------------------------
def run_local(jobs: list[Job], folder: Path, gpus: list[int], save, console: Console) -> None:
    """Run the pending jobs, at most one per GPU (one in all on the CPU), dependencies first."""
    import submitit

    executor = submitit.LocalExecutor(folder=folder)
    slots: dict[int | None, tuple[Job, object] | None] = {g: None for g in (gpus or [None])}
    todo = [j for j in jobs if j.state == "pending"]
    title = f"sweep · {len(todo)} job(s) to run on {', '.join(f'GPU {g}' for g in gpus) or 'the CPU'}"
    try:
        with Live(table(jobs, title), console=console, refresh_per_second=2) as live:
            while todo or any(slots.values()):
                for slot, running in slots.items():
                    if running and running[1].done():
                        job, sub = running
                        job.ended = time.time()
                        error = sub.exception()
                        job.state = "failed" if error else "done"
                        if error:
                            job.note = f"see {job.log}"
                        slots[slot] = None
                        save()
                for job in list(todo):
                    deps = [jobs[i] for i in job.depends]
                    if job.stage != "collect" and any(d.state in ("failed", "cancelled") for d in deps):
                        job.state, job.note = "cancelled", f"its {deps[0].stage} failed"
                        todo.remove(job)
                        save()
                        continue
                    if any(d.state in ("pending", "running") for d in deps):
                        continue
                    free = [s for s, r in slots.items() if r is None]
                    if not free:
                        break
                    slot = free[0]
                    on_gpu = slot is not None and job.stage != "collect"
                    executor.update_parameters(
                        timeout_min=LOCAL_TIMEOUT_MIN,
                        gpus_per_node=1 if on_gpu else 0,
                        visible_gpus=(slot,) if on_gpu else (),
                    )
                    sub = executor.submit(run_step, job.command)
                    job.job_id, job.log, job.state = str(sub.job_id), str(sub.paths.stdout), "running"
                    job.started = time.time()
                    slots[slot] = (job, sub)
                    todo.remove(job)
                    save()
                live.update(table(jobs, title))
                time.sleep(0.5)
            live.update(table(jobs, title))
        if not console.is_terminal:
            console.line()
    except KeyboardInterrupt:
        for running in slots.values():
            if running:
                running[1].cancel()
                running[0].state, running[0].ended = "cancelled", time.time()
        for job in todo:
            job.state = "cancelled"
        save()
        raise


# ---- main ----------------------------------------------------------------------------------------
def status(output_root: Path, console: Console) -> int:
    executor, jobs = load_jobs(output_root)
    if executor == "slurm":
        refresh_slurm(jobs)
        save_jobs(output_root.absolute(), executor, jobs)  # final states stay known after SLURM forgets them
    console.print(table(jobs, f"sweep in {output_root} · {executor}"))
    return 0


def sweep(argv: list[str] | None, console: Console) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, train_args = argv[:split], argv[split + 1 :]
    args = build_parser().parse_args(argv)
    if args.status:
        return status(args.output_root, console)
    if Path(args.eval_dir).is_absolute() or ".." in Path(args.eval_dir).parts:
        raise SweepError(f"--eval-dir must be a folder name inside each run, got {args.eval_dir}")
    scenes = scenes_of(args)
    if "collect" in args.stages and not COLLECT_SCRIPT.is_file():
        raise SweepError(f"the collect stage needs {COLLECT_SCRIPT} (a source checkout of nerfinternals)")
    if args.executor == "slurm":
        check_slurm_args(args)
        if state_path(args.output_root).is_file():
            executor, earlier = load_jobs(args.output_root)
            if executor == "slurm":
                refresh_slurm(earlier)
                active = [j.job_id for j in earlier if j.job_id and j.state.upper() in ACTIVE_SLURM_STATES]
                if active:
                    raise SweepError(
                        f"{len(active)} job(s) of the sweep in {args.output_root} are still queued or "
                        f"running ({', '.join(active[:3])}{', ...' if len(active) > 3 else ''}): "
                        "see --status; wait for them or scancel them"
                    )
    gpus = local_gpus() if args.executor == "local" else []
    eval_args = _split(args.eval_args, "--eval-args")
    jobs = plan(
        args,
        scenes,
        train_args,
        eval_args,
        cpu=not gpus if args.executor == "local" else args.slurm_gpus_per_job == 0,
    )

    out = args.output_root.absolute()
    folder = out / STATE_DIR / "logs"
    folder.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        save_jobs(out, args.executor, jobs)
        save_eval_args(out, jobs, eval_args, args.eval_dir)

    if args.executor == "slurm":
        submit_slurm(args, jobs, folder, save)
        console.print(table(jobs, f"sweep in {out} · submitted to SLURM"))
        console.print(f"see the states with: ns-internals-sweep --status --output-root {args.output_root}")
        return 0
    save()
    run_local(jobs, folder, gpus, save, console)
    failed = [j for j in jobs if j.state in ("failed", "cancelled")]
    if failed:
        console.print(f"[red]{len(failed)} job(s) failed or were cancelled[/]: logs in {folder}")
        return 1
    console.print(
        f"sweep done: runs in {out}"
        + (f", tables in {out}/results.md" if jobs[-1].stage == "collect" else "")
    )
    return 0


def entrypoint(argv: list[str] | None = None) -> None:
    """Console script ``ns-internals-sweep``: bad input is one ``error:`` line and exit code 2."""
    console = Console() if sys.stdout.isatty() else Console(width=140)
    try:
        code = sweep(argv, console)
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: the running jobs were stopped; the same command resumes", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)


if __name__ == "__main__":
    entrypoint()
