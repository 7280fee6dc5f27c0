"""Bit-identical fast kernels for nerfstudio's scene contraction and torch hash encoding.

nerfstudio's ``SceneContraction`` (L-infinity order, nerfacto's) takes the norm with
``torch.linalg.norm(x, ord=inf)``, several times slower per position than ``x.abs().amax(-1)``,
which computes the same maximum of the same absolute values (exact: no rounding is involved). Its
torch ``HashEncoding`` hashes the eight corners with 24 multiplies, reduces them with an int64 modulo,
and gathers them with eight advanced-indexing calls; here the six distinct products are formed once,
the power-of-two table size is a bit mask (equal to the floor modulo of int64 two's complement for
any sign), and one ``index_select`` gathers all corners. The trilinear blend is nerfstudio's
expression, term for term, so the features are the same bits.

:func:`install` swaps these subclasses into a model's modules in place (the state_dict is unchanged).
They apply only without autograd (renders: ``torch.inference_mode`` / ``no_grad``), so training runs
nerfstudio's own code, and only inside :func:`kernel_scope` ``"fast"`` (the default); ``"stock"``
runs nerfstudio's code as it ships, which is how benchmarks time "stock nerfstudio". ``"compiled"`` runs
the hash encoding and the density grid's look-up chain (``nerfinternals.estimators.base.grid_weights``)
through ``torch.compile`` (:func:`run_compiled`).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from nerfstudio.field_components.encodings import HashEncoding
from nerfstudio.field_components.spatial_distortions import SceneContraction
from torch import Tensor

KERNELS: tuple[str, ...] = ("fast", "compiled", "stock")
"""What renders run through: "fast" this module's kernels (the default), "compiled" those with the hash
encoding compiled by ``torch.compile`` (falls back to "fast" with one warning where it cannot compile),
"stock" nerfstudio's as shipped."""
Kernels = Literal[KERNELS]


_state = threading.local()


def active() -> str:
    """The kernels this thread renders with: "fast" unless inside another :func:`kernel_scope`."""
    return getattr(_state, "kernels", "fast")


@contextlib.contextmanager
def kernel_scope(kernels: str) -> Iterator[None]:
    """Render with ``kernels`` (one of :data:`KERNELS`) in this thread."""
    if kernels not in KERNELS:
        raise ValueError(f"--kernels {kernels!r} is not one of {', '.join(KERNELS)}")
    saved = active()
    _state.kernels = kernels
    try:
        yield
    finally:
        _state.kernels = saved


def _fast() -> bool:
    return not torch.is_grad_enabled() and active() != "stock"


def contract_inf(x: Tensor) -> Tensor:
    """``SceneContraction(order=inf)`` of positions (..., 3), with the norm as ``abs().amax()``."""
    mag = x.abs().amax(dim=-1, keepdim=True)
    return torch.where(mag < 1, x, (2 - (1 / mag)) * (x / mag))


class FastSceneContraction(SceneContraction):
    """:class:`SceneContraction` whose L-infinity norm of plain positions is ``abs().amax()``."""

    def forward(self, positions):
        if isinstance(positions, Tensor) and self.order == math.inf and _fast():
            return contract_inf(positions)
        return super().forward(positions)


_PRIMES = (1, 2654435761, 805459861)
_PRIMES_INT32 = tuple(p - (1 << 32) if p >= 1 << 31 else p for p in _PRIMES)
"""The primes modulo 2^32, as int32: a product's low 32 bits are the same in int32 (wrapping) and int64."""


def _int32_hash(encoding: HashEncoding) -> bool:
    """Whether the hash can run in int32: every level's index, offset included, below 2^31 (the index is
    the product's low bits)."""
    return encoding.hash_table_size * encoding.num_levels <= 1 << 31


def hash_encode(encoding: HashEncoding, in_tensor: Tensor) -> Tensor:
    """``encoding.pytorch_fwd(in_tensor)`` (torch implementation), the same bits in fewer kernels."""
    x = in_tensor[..., None, :]  # [..., 1, 3]
    scaled = x * encoding.scalings.view(-1, 1).to(x.device)  # [..., L, 3]
    scaled_c = torch.ceil(scaled).type(torch.int32)
    scaled_f = torch.floor(scaled).type(torch.int32)
    offset = scaled - scaled_f
    narrow = _int32_hash(encoding)
    # nerfstudio's hash_fn multiplies in int64; for a power-of-two table only the low bits count
    primes = (
        torch.tensor(_PRIMES_INT32, dtype=torch.int32, device=x.device)
        if narrow
        else torch.tensor(_PRIMES, device=x.device)
    )
    hc, hf = scaled_c * primes, scaled_f * primes  # [..., L, 3]
    xy = {  # x and y hashed, by (x corner, y corner)
        "cc": hc[..., 0] ^ hc[..., 1],
        "cf": hc[..., 0] ^ hf[..., 1],
        "ff": hf[..., 0] ^ hf[..., 1],
        "fc": hf[..., 0] ^ hc[..., 1],
    }
    # nerfstudio's corners 0..7: (c,c,c) (c,f,c) (f,f,c) (f,c,c) (c,c,f) (c,f,f) (f,f,f) (f,c,f)
    corners = torch.stack(
        [xy[k] ^ z for z in (hc[..., 2], hf[..., 2]) for k in ("cc", "cf", "ff", "fc")], dim=-2
    )  # [..., 8, L]
    # nerfstudio's table holds 2**log2_hashmap_size entries per level: x % size is x & (size - 1) for
    # either sign (two's complement)
    corners = corners & (encoding.hash_table_size - 1)
    corners = corners + encoding.hash_offset.to(device=x.device, dtype=corners.dtype)
    table = encoding.hash_table
    f = table.index_select(0, corners.reshape(-1)).view(*corners.shape, table.shape[-1])  # [..., 8, L, F]
    f_0, f_1, f_2, f_3, f_4, f_5, f_6, f_7 = f.unbind(dim=-3)
    o0, o1, o2 = offset[..., 0:1], offset[..., 1:2], offset[..., 2:3]
    f_03 = f_0 * o0 + f_3 * (1 - o0)
    f_12 = f_1 * o0 + f_2 * (1 - o0)
    f_56 = f_5 * o0 + f_6 * (1 - o0)
    f_47 = f_4 * o0 + f_7 * (1 - o0)
    f0312 = f_03 * o1 + f_12 * (1 - o1)
    f4756 = f_47 * o1 + f_56 * (1 - o1)
    encoded = f0312 * o2 + f4756 * (1 - o2)
    return torch.flatten(encoded, start_dim=-2, end_dim=-1)


class FastHashEncoding(HashEncoding):
    """:class:`HashEncoding` whose torch forward is :func:`hash_encode`."""

    def pytorch_fwd(self, in_tensor: Tensor) -> Tensor:
        if not _fast():
            return super().pytorch_fwd(in_tensor)
        if active() == "compiled":
            return compiled_hash_encode(self, in_tensor)
        return hash_encode(self, in_tensor)


_compiled: dict = {"fns": {}, "failed": ""}
"""The compiled functions by their eager ones, and why compiling failed ("" while it has not)."""


def run_compiled(fn: Callable, *args):
    """``fn(*args)`` through ``torch.compile(fn, dynamic=True)`` (dynamic shapes: chunks of any size reuse one
    compilation; inductor caches it on disk between runs). Where compiling fails (no C++ compiler, no
    Triton) it warns once and runs every function eagerly from then on."""
    if not _compiled["failed"]:
        compiled = _compiled["fns"].get(fn)
        if compiled is None:
            compiled = _compiled["fns"][fn] = torch.compile(fn, dynamic=True)
        try:
            return compiled(*args)
        except Exception as error:  # inductor raises its own types (a missing compiler, say)
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            _compiled["failed"] = f"{type(error).__name__}: {first}"
            warnings.warn(
                f"--kernels compiled: torch.compile failed ({_compiled['failed']}); rendering with the fast "
                "eager kernels instead",
                stacklevel=2,
            )
    return fn(*args)


def compiled_hash_encode(encoding: HashEncoding, in_tensor: Tensor) -> Tensor:
    """:func:`hash_encode` through :func:`run_compiled`."""
    return run_compiled(hash_encode, encoding, in_tensor)


def compile_model(
    model: torch.nn.Module, device: torch.device | str, kernels: str = "compiled"
) -> float | None:
    """With ``kernels`` "compiled", compile the hash encodings of ``model`` now (a small input each), so that
    a render's time does not hold the compilation, and return the seconds it took (near 0 once compiled, or
    from inductor's disk cache); with other kernels nothing is compiled: None."""
    if kernels != "compiled":
        return None
    start = time.perf_counter()
    with torch.inference_mode(), kernel_scope("compiled"):
        for sub in model.modules():
            if isinstance(sub, FastHashEncoding):
                sub.pytorch_fwd(torch.rand(64, 3, device=device))
    return time.perf_counter() - start


_FAST = {SceneContraction: FastSceneContraction, HashEncoding: FastHashEncoding}


def install(module: torch.nn.Module) -> int:
    """Swap the fast subclasses into ``module``'s submodules of exactly the stock classes (in place; the
    same parameters and buffers). Returns how many were swapped."""
    swapped = 0
    for sub in module.modules():
        fast = _FAST.get(type(sub))
        if fast is not None:
            sub.__class__ = fast
            swapped += 1
    return swapped
