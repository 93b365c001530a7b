"""Which CPU kernel settings change what ``models train`` computes, on this machine.

One forward and backward pass of the built-in encoder over a fixed batch, in a fresh
process per setting (the variables are read when torch loads), printed as a digest of
the outputs and gradients. Settings that print different digests sum in a different
order; a machine that picks other kernels natively trains other bytes, which is why
``models train`` pins them (``reputation_pipeline/scoring/numerics.py``).

    <torch env>/bin/python scripts/check_cpu_numerics.py [--threads 2] [--via "qemu-x86_64 -cpu Haswell"] [--pin MKL_CBWR=COMPATIBLE]

``--via`` runs each probe under a command, so one machine can stand in for another CPU:
QEMU's user-mode emulator reports the CPU model it is given, and the kernels choose by
what it reports. A pinned digest that equals the host's is the same arithmetic on that CPU.

Exit status 0 when two pinned runs agree with each other.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import hashlib, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from reputation_pipeline.scoring.encoder import BUILTIN_ENCODER, load_encoder
tok, enc = load_encoder(BUILTIN_ENCODER)
enc = enc.float()
texts = ["the service was awful and nobody answered", "love this brand so much!!", "meh, whatever"] * 8
batch = tok(texts, padding=True, return_tensors="pt")
out = enc(**batch).last_hidden_state
(out ** 2).mean().backward()
h = hashlib.sha256(out.detach().numpy().tobytes())
for p in enc.parameters():
    if p.grad is not None:  # the pooler takes no part in the loss
        h.update(p.grad.numpy().tobytes())
print(torch.backends.cpu.get_cpu_capability(), h.hexdigest()[:16])
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--via", default="", help="a command each probe runs under, e.g. 'qemu-x86_64 -cpu EPYC'")
    ap.add_argument("--only", choices=["all", "native-pinned"], default="all",
                    help="native-pinned: one native and two pinned probes (for a slow --via)")
    ap.add_argument("--pin", action="append", default=[], metavar="VAR=VALUE",
                    help="replace one of the pinned settings in the pinned probes, e.g. MKL_CBWR=COMPATIBLE")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))  # the torch env need not have the project installed
    from reputation_pipeline.scoring.numerics import PINNED

    overrides = dict(item.split("=", 1) for item in args.pin)
    if unknown := set(overrides) - set(PINNED):
        ap.error(f"--pin: {sorted(unknown)} is not one of the pinned settings {sorted(PINNED)}")
    PINNED = {**PINNED, **overrides}
    settings = [("native", {})]
    if args.only == "all":
        settings += [("native, again", {})]
        settings += [(f"{k}={v} only", {k: v}) for k, v in PINNED.items()]
    settings += [("pinned (models train)", PINNED), ("pinned, again", PINNED)]
    base = {k: v for k, v in os.environ.items() if k not in PINNED}
    digests = {}
    for name, extra in settings:
        proc = subprocess.run([*shlex.split(args.via), sys.executable, "-c", PROBE, str(args.threads)], env={**base, **extra}, cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{name}: the probe failed\n{proc.stderr[-2000:]}")
        out = proc.stdout.split()
        digests[name] = out[-1]
        print(f"{name:34s} ATen {out[-2]:8s} digest {out[-1]}")
    return 0 if digests["pinned (models train)"] == digests["pinned, again"] else 1


if __name__ == "__main__":
    sys.exit(main())
