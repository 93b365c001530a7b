"""Low-rank adapters (LoRA) for the encoder: the fine-tuned part of the default
models, small enough to commit (the encoder itself comes from its PyPI package).

At training time each targeted ``nn.Linear`` is wrapped so that
``y = W x + b + (alpha / r) * B (A x)`` with only ``A``, ``B`` (and the
encoder's LayerNorms) trainable. At inference the update is merged into ``W``
once, so the adapted encoder runs exactly as fast as the original one.

Adapter tensors are named ``<module path>.lora_A`` / ``.lora_B`` and
``<LayerNorm path>.weight`` / ``.bias`` (trained LayerNorms, stored whole).
"""
from __future__ import annotations

import math
import re

import torch
from torch import nn

# every attention and feed-forward projection of a BERT-style encoder
DEFAULT_TARGETS = r"attention\.self\.(query|key|value)$|attention\.output\.dense$|intermediate\.dense$|output\.dense$"


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base = base
        self.rank = rank
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))  # starts as the identity update
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.t() @ self.lora_B.t()) * self.scale


def _targets(model: nn.Module, pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.startswith("encoder.") and rx.search(n)]


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def inject_lora(model: nn.Module, rank: int, alpha: float, dropout: float = 0.0,
                targets: str = DEFAULT_TARGETS, train_layernorm: bool = True) -> list[str]:
    """Freeze ``model``, wrap the target Linears with LoRA; returns their names."""
    for p in model.parameters():
        p.requires_grad_(False)
    names = _targets(model, targets)
    if not names:
        raise ValueError(f"no Linear layer matches {targets!r}")
    for n in names:
        _set_module(model, n, LoRALinear(model.get_submodule(n), rank, alpha, dropout))
    if train_layernorm:
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                for p in m.parameters():
                    p.requires_grad_(True)
    return names


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable encoder tensors, under the names :func:`merge_adapter` expects."""
    out: dict[str, torch.Tensor] = {}
    for n, m in model.named_modules():
        if isinstance(m, LoRALinear):
            out[f"{n}.lora_A"] = m.lora_A.detach().clone()
            out[f"{n}.lora_B"] = m.lora_B.detach().clone()
        elif isinstance(m, nn.LayerNorm) and m.weight.requires_grad:
            out[f"{n}.weight"] = m.weight.detach().clone()
            out[f"{n}.bias"] = m.bias.detach().clone()
    return out


@torch.no_grad()
def merge_adapter(model: nn.Module, tensors: dict[str, torch.Tensor], alpha: float, rank: int) -> int:
    """Fold adapter tensors into a plain (unwrapped) encoder in place; returns how
    many modules changed. Unknown names are an error, not silently skipped."""
    scale = alpha / rank
    modules = dict(model.named_modules())
    changed = 0
    for key in sorted(tensors):
        path, _, kind = key.rpartition(".")
        if kind == "lora_B":
            continue
        mod = modules.get(path)
        if kind == "lora_A":
            if not isinstance(mod, nn.Linear):
                raise ValueError(f"adapter names {path!r}, which is not a Linear layer of this encoder")
            a = tensors[key].float()
            b = tensors[f"{path}.lora_B"].float()
            mod.weight += (b @ a * scale).to(mod.weight.dtype)
        elif kind in ("weight", "bias"):
            if not isinstance(mod, nn.LayerNorm):
                raise ValueError(f"adapter names {path!r}, which is not a LayerNorm of this encoder")
            getattr(mod, kind).copy_(tensors[key].float())
        else:
            raise ValueError(f"unexpected adapter tensor {key!r}")
        changed += 1
    return changed
