"""Tokenized texts as padded batches of similar length: the part of inference
both engines (ONNX Runtime on the CPU, torch on a GPU) share. Pure numpy."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


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


def padded_batches(tokenizer, texts: Sequence[str], *, max_length: int, max_batch: int, token_budget: int,
                   bucketing: bool = True) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """(row indices, input_ids, attention_mask) per batch; ids and mask are int64
    [rows, longest], right-padded with the tokenizer's pad id."""
    n = len(texts)
    if n == 0:
        return
    ids = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)["input_ids"]
    lengths = [len(x) for x in ids]
    if bucketing:
        batches = length_batches(lengths, max_batch=max_batch, token_budget=token_budget)
    else:
        batches = [list(range(i, min(n, i + max_batch))) for i in range(0, n, max_batch)]
    pad_id = tokenizer.pad_token_id or 0
    for b in batches:
        longest = max(lengths[i] for i in b)
        input_ids = np.full((len(b), longest), pad_id, dtype=np.int64)
        mask = np.zeros((len(b), longest), dtype=np.int64)
        for r, i in enumerate(b):
            input_ids[r, : lengths[i]] = ids[i]
            mask[r, : lengths[i]] = 1
        yield b, input_ids, mask
