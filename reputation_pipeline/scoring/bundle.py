"""The heads-bundle format, readable without torch (the CPU runtime serves a bundle
with ONNX Runtime; training writes it with torch, scoring/heads.py).

Bundle folder: ``heads.safetensors`` (tensors ``<task>.<param>``), ``heads.json``
(format, model_version, encoder reference, features, per-task labels/architecture,
logit biases, training provenance and validation metrics) and, for a fine-tuned
encoder, ``adapter.safetensors`` named in ``meta["adapter"]`` (scoring/adapters.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BUNDLE_FORMAT = "reputation-heads/1"
HEADS_FILE = "heads.safetensors"
META_FILE = "heads.json"
ADAPTER_FILE = "adapter.safetensors"


def is_heads_bundle(path: str | Path) -> bool:
    return (Path(path) / META_FILE).is_file() and (Path(path) / HEADS_FILE).is_file()


def read_meta(folder: str | Path) -> dict:
    folder = Path(folder)
    meta = json.loads((folder / META_FILE).read_text())
    if meta.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{folder}: not a {BUNDLE_FORMAT} bundle")
    return meta


def head_arrays(folder: str | Path, meta: dict) -> dict[str, dict[str, np.ndarray]]:
    """Per task, its head's parameters as float32 numpy arrays (``mu``, ``sigma``,
    ``net.<i>.weight``/``bias``: the torch state-dict names)."""
    from safetensors.numpy import load_file

    tensors = load_file(str(Path(folder) / HEADS_FILE))
    return {task: {k[len(task) + 1:]: v.astype(np.float32) for k, v in tensors.items() if k.startswith(task + ".")}
            for task in meta["tasks"]}


def adapter_arrays(folder: str | Path, meta: dict) -> dict[str, np.ndarray] | None:
    """The bundle's encoder adapter as float32 numpy arrays, or None for a frozen encoder."""
    spec = meta.get("adapter")
    if not spec:
        return None
    from safetensors.numpy import load_file

    return {k: v.astype(np.float32) for k, v in load_file(str(Path(folder) / spec["file"])).items()}
