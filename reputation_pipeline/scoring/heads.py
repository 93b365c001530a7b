"""Classification heads over pooled encoder features (the small, committed part
of the default models) in torch, saved and loaded in the bundle format
(scoring/bundle.py)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from reputation_pipeline.scoring.bundle import ADAPTER_FILE, HEADS_FILE, META_FILE, read_meta


class Head(nn.Module):
    """Standardize -> (Linear -> GELU -> Dropout)? -> Linear. hidden=0 is a
    multinomial logistic regression."""

    def __init__(self, in_dim: int, n_out: int, hidden: int = 0, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("mu", torch.zeros(in_dim))
        self.register_buffer("sigma", torch.ones(in_dim))
        if hidden:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mu) / self.sigma)


def save_bundle(folder: Path, heads: dict[str, Head], meta: dict, adapter: dict[str, torch.Tensor] | None = None) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for task, head in heads.items():
        for k, v in head.state_dict().items():
            # weights in float16 (half the size to commit), standardization stats in float32
            dtype = torch.float16 if k.startswith("net.") else torch.float32
            tensors[f"{task}.{k}"] = v.detach().to(dtype).contiguous().clone()
    save_file(tensors, str(folder / HEADS_FILE))
    if adapter is not None:
        save_file({k: v.detach().to(torch.float16).contiguous() for k, v in adapter.items()}, str(folder / ADAPTER_FILE))
    else:
        (folder / ADAPTER_FILE).unlink(missing_ok=True)  # a frozen-encoder bundle must not keep a stale adapter
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_bundle(folder: str | Path) -> tuple[dict, dict[str, Head]]:
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = read_meta(folder)
    tensors = load_file(str(folder / HEADS_FILE))
    heads: dict[str, Head] = {}
    for task, spec in meta["tasks"].items():
        head = Head(spec["in_dim"], len(spec["labels"]), spec.get("hidden", 0))
        state = {k[len(task) + 1 :]: v.float() for k, v in tensors.items() if k.startswith(task + ".")}
        head.load_state_dict(state)
        head.eval()
        heads[task] = head
    return meta, heads


def load_adapter(folder: str | Path, meta: dict) -> dict[str, torch.Tensor] | None:
    """The bundle's encoder adapter tensors (float32), or None for a frozen encoder."""
    spec = meta.get("adapter")
    if not spec:
        return None
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(Path(folder) / spec["file"])).items()}
