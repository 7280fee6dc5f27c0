#!/usr/bin/env python
"""The kernels of :mod:`nerfinternals.kernels` against nerfstudio's, on random positions.

For nerfstudio's L-infinity scene contraction and its torch hash encoding (``HashEncoding.pytorch_fwd``):
time per position of nerfstudio's own ("stock"), the fast eager kernel ("fast") and that kernel through
``torch.compile`` ("compiled", its first call, the compilation, reported apart), each the median of
``--repeats`` runs after a warm-up, without autograd, under the steady allocator, and whether the output
has the same bits as stock's (``torch.equal``). The encoding's shape defaults to the reduced nerfacto
field of the real-capture runs (8 levels, 2^17 entries per level); nerfacto's own is
``--levels 16 --log2-hashmap-size 19``.

    python -m benchmarks.kernels --positions 200000 --threads 1
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from nerfstudio.field_components.encodings import HashEncoding
from nerfstudio.field_components.spatial_distortions import SceneContraction
from rich.console import Console
from rich.table import Table

from nerfinternals import kernels
from nerfinternals.common import run_cli, timed, write_json
from nerfinternals.loading import InputError
from nerfinternals.utils import use_allocator

CONSOLE = Console(width=120)


@dataclass
class KernelBenchmark:
    """Time nerfstudio's scene contraction and torch hash encoding against the fast and compiled kernels."""

    positions: int = 200_000
    """Random positions per call."""
    levels: int = 8
    """Hash encoding levels."""
    log2_hashmap_size: int = 17
    """Hash table entries per level, log2."""
    features_per_level: int = 2
    """Features per level."""
    max_res: int = 2048
    """Finest level's resolution."""
    repeats: int = 5
    """Timed runs per kernel (median reported)."""
    threads: int = 0
    """torch threads (0: torch's default)."""
    compiled: bool = True
    """Also time the compiled hash encoding (its first call compiles: a minute on a CPU, less from
    inductor's disk cache)."""
    device: str = "cpu"
    """Torch device."""
    output: Path | None = None
    """Write the figures as JSON here."""


def _median(device, fn, repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(timed(device, fn)[1] for _ in range(repeats))


def measure(cfg: KernelBenchmark) -> dict:
    if cfg.positions < 1 or cfg.repeats < 1:
        raise InputError(f"--positions and --repeats must be at least 1, got {cfg.positions}, {cfg.repeats}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_allocator("steady")
    device = torch.device(cfg.device)
    generator = torch.Generator().manual_seed(0)
    n = cfg.positions
    rows: dict[str, dict] = {}

    def row(name, stock_fn, variants):
        reference = stock_fn()
        stock_t = _median(device, stock_fn, cfg.repeats)
        rows[f"{name} / stock"] = dict(ns_per_position=stock_t / n * 1e9, speedup=1.0, identical=True)
        for label, fn in variants:
            first_start = time.perf_counter()
            out = fn()
            first = time.perf_counter() - first_start
            t = _median(device, fn, cfg.repeats)
            rows[f"{name} / {label}"] = dict(
                ns_per_position=t / n * 1e9,
                speedup=stock_t / t,
                identical=bool(torch.equal(out, reference)),
                first_call_seconds=first,
            )

    positions = ((torch.rand(n, 3, generator=generator) * 2 - 1) * 3).to(device)
    contraction = SceneContraction(order=math.inf)
    with torch.inference_mode():
        row(
            "scene contraction",
            lambda: contraction(positions),
            [("fast", lambda: kernels.contract_inf(positions))],
        )

        encoding = HashEncoding(
            num_levels=cfg.levels,
            log2_hashmap_size=cfg.log2_hashmap_size,
            features_per_level=cfg.features_per_level,
            max_res=cfg.max_res,
            implementation="torch",
        ).to(device)
        with torch.no_grad():
            encoding.hash_table.uniform_(-1, 1, generator=generator)
        unit = torch.rand(n, 3, generator=generator).to(device)
        variants = [("fast", lambda: kernels.hash_encode(encoding, unit))]
        if cfg.compiled:
            variants.append(("compiled", lambda: kernels.compiled_hash_encode(encoding, unit)))
        row(
            f"hash encoding ({cfg.levels} x 2^{cfg.log2_hashmap_size})",
            lambda: encoding.pytorch_fwd(unit),
            variants,
        )

    table = Table(title=f"{n} positions · {torch.get_num_threads()} thread(s) · {device}")
    for column in ("kernel", "ns / position", "× stock", "same bits", "first call (s)"):
        table.add_column(column, justify="left" if column == "kernel" else "right")
    for name, r in rows.items():
        first = r.get("first_call_seconds")
        table.add_row(
            name,
            f"{r['ns_per_position']:.1f}",
            f"{r['speedup']:.2f}",
            "yes" if r["identical"] else "NO",
            "" if first is None else f"{first:.2f}",
        )
    CONSOLE.print(table)
    result = {"settings": {**vars(cfg), "output": None, "threads": torch.get_num_threads()}, "kernels": rows}
    if cfg.output is not None:
        write_json(cfg.output, result)
    return result


def entrypoint() -> None:
    run_cli(KernelBenchmark, measure)


if __name__ == "__main__":
    entrypoint()
