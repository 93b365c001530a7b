"""``models train``'s CPU numerics: pinned before torch loads, or refused."""
from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from reputation_pipeline.scoring import numerics


@pytest.mark.skipif(not numerics.pinnable(), reason="the kernel settings exist on x86-64 only")
def test_pin_sets_every_kernel_family_before_torch_loads():
    code = ("import os, sys; from reputation_pipeline.scoring import numerics; numerics.pin(); "
            "assert 'torch' not in sys.modules; "
            "print(','.join(os.environ[k] for k in sorted(numerics.PINNED)))")
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED}
    env["MKL_CBWR"] = "AUTO"  # a caller's own setting would otherwise decide the kernels
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == ",".join(numerics.PINNED[k] for k in sorted(numerics.PINNED))


def test_native_leaves_the_environment_alone(monkeypatch):
    for k in numerics.PINNED:
        monkeypatch.delenv(k, raising=False)
    numerics.pin("native")
    assert not any(k in os.environ for k in numerics.PINNED)


def test_pin_refuses_once_torch_is_loaded_and_unknown_modes(monkeypatch):
    with pytest.raises(ValueError, match="fast"):
        numerics.pin("fast")
    if numerics.pinnable():
        monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
        with pytest.raises(RuntimeError, match="before torch is imported"):
            numerics.pin()
