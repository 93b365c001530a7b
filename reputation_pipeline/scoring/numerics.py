"""CPU numerics that let ``models train`` give the same bytes on another machine.

PyTorch's CPU build picks its kernels by what the processor offers: ATen's
vectorized kernels by instruction set, MKL's GEMM and oneDNN's primitives by
instruction set and cache sizes. Each choice sums in a different order, so the
same code, data and seed train a different model on a different CPU (measured:
one forward/backward pass of the encoder gives different gradients under each
of the three settings below, and two 2-core machines running the same commit
reached different losses in the first epoch). Pinning all three to AVX2, which
every x86-64 server of the last decade has, makes Intel machines pick the same
kernels; MKL documents the same results across CPUs for a fixed thread count as
Conditional Numerical Reproducibility (``MKL_CBWR``). Its AVX2 mode does not
cover AMD: under QEMU's EPYC model the pinned digest differs, and
``MKL_CBWR=COMPATIBLE`` matched the host (docs/benchmarks.md); switching to it
would retrain the default, at a speed cost not yet measured.

The variables are read when torch loads its libraries, so :func:`pin` must run
before ``import torch``; ``models train`` calls it first. Elsewhere (scoring,
evaluation) results only need to agree to 1e-3, and the native kernels are
faster, so nothing else pins.
"""
from __future__ import annotations

import os
import platform
import sys

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
MODES = ("reproducible", "native")


def pinnable() -> bool:
    """The settings exist for x86-64 only (ARM builds use other kernels)."""
    return platform.machine().lower() in ("x86_64", "amd64")


def pin(mode: str = "reproducible") -> None:
    """Set the variables for ``mode`` in this process's environment.

    ``native`` leaves the environment as it is (each CPU's fastest kernels).
    Raises when torch is already imported: the settings would silently not apply."""
    if mode not in MODES:
        raise ValueError(f"numerics mode {mode!r}: expected one of {MODES}")
    if mode == "native" or not pinnable():
        return
    if "torch" in sys.modules:
        raise RuntimeError("the CPU numerics must be pinned before torch is imported "
                           "(run `reputation-pipeline models train`, or call numerics.pin() first)")
    os.environ.update(PINNED)


def describe() -> dict:
    """What this process trains with, for the bundle's ``training`` record."""
    import torch

    env = {k: os.environ.get(k) for k in PINNED}
    pinned = pinnable() and env == PINNED
    return {"mode": "reproducible" if pinned else "native",
            "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **env, "machine": platform.machine(), **_cpu()}


# the features and cache that native kernel choices depend on: what to compare when
# two machines trained different bytes with the numerics left native
_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def _cpu() -> dict:
    info: dict = {"cpu": platform.processor() or None}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    info["cpu"] = value
                elif key == "cache size":
                    info["cpu_cache"] = value
                elif key == "flags":
                    present = set(value.split())
                    info["cpu_flags"] = [flag for flag in _FLAGS if flag in present]
                    break  # the first processor describes them all
    except OSError:
        pass
    return info
