"""The dev splits models are selected and calibrated on, and the calibration fitted on them (pure, but for
two tests that score with the committed default on a tiny data folder: the ONNX engine, no torch)."""
from __future__ import annotations

import numpy as np
import pytest

from reputation_pipeline.scoring.calibrate import dev_description, dev_split, selection_split
from reputation_pipeline.scoring.data import NEWER_DEV_SOURCES, Split, overlap_key

OLD, NEW = "semeval2017_task4a/twitter-2013train-A.txt", NEWER_DEV_SOURCES[0]


def _split() -> Split:
    texts = [f"old tweet number {i}" for i in range(40)] + [f"new tweet number {i}" for i in range(10)]
    texts[3] = "@brand New tweet number 4 http://t.co/x"  # a copy of a held-out tweet, differently preprocessed
    return Split(texts, [i % 3 for i in range(50)], [OLD] * 40 + [NEW] * 10)


def test_held_out_sources_are_the_dev_split_and_their_copies_leave_fit():
    split = _split()
    fit, dev = selection_split(split, 13, (NEW,))
    assert sorted(dev.tolist()) == list(range(40, 50))
    assert 3 not in fit and sorted(fit.tolist()) == [i for i in range(40) if i != 3]
    dev_keys = {overlap_key(split.texts[i]) for i in dev}
    assert not dev_keys & {overlap_key(split.texts[i]) for i in fit}
    assert fit.tolist() != sorted(fit.tolist())  # a seeded order, so --limit takes rows of every source
    again, _ = selection_split(split, 13, (NEW,))
    assert again.tolist() == fit.tolist()
    assert dev_description(split, (NEW, "elsewhere.txt")) == f"held-out sources {NEW}"


def test_a_task_without_the_held_out_sources_gets_the_seeded_tenth():
    split = _split()
    for sources in ((), ("semeval2017_task4a/twitter-2016devtest-A.txt",)):
        fit, dev = selection_split(split, 13, sources)
        want_fit, want_dev = dev_split(50, 13)
        assert np.array_equal(fit, want_fit) and np.array_equal(dev, want_dev) and len(dev) == 5
        assert dev_description(split, sources) == "seeded 10% of train"


@pytest.mark.parametrize("seed", [0, 13, 21])
def test_seeded_tenth_partitions_the_rows(seed):
    fit, dev = dev_split(101, seed)
    assert len(dev) == 10 and sorted(np.concatenate([fit, dev]).tolist()) == list(range(101))


def _data(root):
    semeval = root / "semeval2017_task4a"
    semeval.mkdir(parents=True)
    rows = {"twitter-2013train-A.txt": [("worst service ever", "negative"), ("store opens at nine", "neutral"),
                                        ("love the new app", "positive")] * 4,
            "twitter-2016dev-A.txt": [("this update is terrible", "negative"), ("meeting moved to friday", "neutral"),
                                      ("best day ever thanks", "positive"), ("I hate waiting on hold", "negative")]}
    for n, (name, items) in enumerate(rows.items()):
        (semeval / name).write_text("".join(f"{100 * n + i}\t{y}\t{t} {i}\n" for i, (t, y) in enumerate(items)))
    val = root / "tweeteval" / "sentiment"
    val.mkdir(parents=True)
    (val / "val_text.txt").write_text("great phone\nawful phone\n")
    (val / "val_labels.txt").write_text("2\n0\n")
    return root


def test_named_splits_read_the_held_out_rows(tmp_path):
    from reputation_pipeline.scoring.evaluate import split_rows

    data = _data(tmp_path / "data")
    texts, labels, source = split_rows("sentiment", "dev", data)
    assert len(texts) == 4 and sorted(labels) == [0, 0, 1, 2] and source == f"held-out sources {NEW}"
    assert all(t.split()[-1] in "0123" for t in texts)
    assert split_rows("sentiment", "val", data)[:2] == (["great phone", "awful phone"], [2, 0])
    with pytest.raises(ValueError, match="unknown split"):
        split_rows("sentiment", "test", data)


def test_models_eval_scores_the_newer_data_split(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    data = _data(tmp_path / "data")
    out = subprocess.run([sys.executable, "-m", "reputation_pipeline.scoring.cli", "models", "eval", "--task",
                          "sentiment", "--split", "dev", "--data", str(data)],
                         capture_output=True, text=True, timeout=240, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    head, last = out.stdout.strip().splitlines()[-2:]
    assert "split=dev (held-out sources semeval2017_task4a/twitter-2016dev-A.txt)" in head and " n=4 " in head
    name, value = last.split("=")
    assert name == "macro_recall" and 0.0 <= float(value) <= 1.0
    both = subprocess.run([sys.executable, "-m", "reputation_pipeline.scoring.cli", "models", "eval", "--task",
                           "sentiment", "--split", "dev", "--texts", "t.txt", "--labels", "l.txt"],
                          capture_output=True, text=True, timeout=240)
    assert both.returncode != 0 and "--split" in both.stderr


def test_cross_fit_measures_each_set_with_the_bias_of_the_others():
    from reputation_pipeline.scoring.calibrate import cross_fit, fit_bias
    from reputation_pipeline.scoring.metrics import task_metric

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1200)
    p1 = np.clip(0.45 + 0.4 * y + rng.normal(0, 0.15, len(y)), 0.001, 0.999)  # the best cut is above 0.5
    probs = np.stack([1 - p1, p1], axis=1)
    groups = ["a.txt"] * 600 + ["b.txt"] * 600
    out = cross_fit("offensive", probs, y, groups)
    assert set(out) == {"a.txt", "b.txt"} and out["a.txt"]["n"] == 600
    bias_b = fit_bias("offensive", probs[600:], y[600:])[0]
    assert out["a.txt"]["bias_from_the_others"] == bias_b
    logits = np.log(probs[:600]) + np.asarray(bias_b)
    assert out["a.txt"]["after"] == round(task_metric("offensive", y[:600], logits.argmax(-1))[1], 4)
    assert out["a.txt"]["after"] > out["a.txt"]["before"]  # the same shift in both sets carries over
    assert cross_fit("offensive", probs, y, ["a.txt"] * 1200) == {}


def test_a_bias_that_loses_across_the_held_out_sets_is_not_kept():
    from reputation_pipeline.scoring.calibrate import bias_carries

    assert bias_carries({})  # one set: nothing to tell
    assert bias_carries({"a": {"before": 0.60, "after": 0.62}, "b": {"before": 0.64, "after": 0.63}})
    # the default sentiment model's figures: +0.001 on one 2016 set, -0.014 on the other
    assert not bias_carries({"a": {"before": 0.5989, "after": 0.5999}, "b": {"before": 0.6372, "after": 0.6236}})


def test_without_bias_recovers_the_unbiased_outputs():
    from reputation_pipeline.scoring.calibrate import without_bias

    rng = np.random.default_rng(1)
    probs = rng.dirichlet([1, 1, 1], 200)
    bias = np.asarray([0.7, 0.0, -0.4])
    biased = np.exp(np.log(probs) + bias)
    biased /= biased.sum(-1, keepdims=True)
    assert np.allclose(without_bias(biased, bias), probs, atol=1e-9)
    assert without_bias(probs, [0.0, 0.0, 0.0]) is probs


def _three_task_data(root):
    _data(root)
    rng = np.random.default_rng(2)
    words = {0: ["thanks for the update", "nice weather today", "see you at lunch"],
             1: ["you are a stupid idiot", "shut up you moron", "what a disgusting loser"]}
    for task in ("offensive", "hate"):
        folder = root / "tweeteval" / task
        folder.mkdir(parents=True)
        for split, n in (("train", 40), ("val", 6)):
            ys = [int(y) for y in rng.integers(0, 2, n)]
            texts = [f"{words[y][i % 3]} {split} {i}" for i, y in enumerate(ys)]
            (folder / f"{split}_text.txt").write_text("\n".join(texts) + "\n")
            (folder / f"{split}_labels.txt").write_text("\n".join(map(str, ys)) + "\n")
    return root


def test_calibrate_fits_from_the_unbiased_outputs_so_a_second_pass_changes_nothing(tmp_path):
    import json
    import shutil

    from reputation_pipeline.scoring.bundle import META_FILE
    from reputation_pipeline.scoring.calibrate import calibrate
    from reputation_pipeline.scoring.models import DEFAULT_MODELS_DIR

    data = _three_task_data(tmp_path / "data")
    results = {}
    # the same weights with no bias and with biases no single fit could undo: every pass fits from scratch
    for name, preset in (("zero", {}), ("skewed", {"sentiment": [1.0, 0.0, -1.0], "offensive": [0.0, 3.0]})):
        folder = tmp_path / name
        shutil.copytree(DEFAULT_MODELS_DIR, folder)
        meta = json.loads((folder / META_FILE).read_text())
        for task, spec in meta["tasks"].items():
            spec["logit_bias"] = preset.get(task, [0.0] * len(spec["labels"]))
        (folder / META_FILE).write_text(json.dumps(meta))
        first = calibrate(folder, data_dir=data, log=lambda m: None)
        second = calibrate(folder, data_dir=data, log=lambda m: None)
        results[name] = {t: s["logit_bias"] for t, s in second["tasks"].items()}
        assert results[name] == {t: s["logit_bias"] for t, s in first["tasks"].items()}
        assert second["model_version"] == first["model_version"]
    assert results["skewed"] == results["zero"]
