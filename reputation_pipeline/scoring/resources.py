"""Scoring configuration as a Dagster resource: which model serves which
analysis (optionally per platform) and inference settings. Defaults come from
the environment so deployments differ by configuration, not code:

- ``REPUTATION_SENTIMENT_MODEL`` / ``REPUTATION_OFFENSIVE_MODEL`` /
  ``REPUTATION_HATE_MODEL``: ``default`` (committed heads), a heads-bundle
  folder, a local model folder or a hub id;
- ``REPUTATION_PLATFORM_MODELS``: JSON ``{"reddit": {"sentiment": "<ref>"}}``;
- ``REPUTATION_SCORING_QUANTIZE`` (``1``/``0``, default 0), ``REPUTATION_SCORING_THREADS``;
- ``REPUTATION_SCORING_DEVICE``: ``cpu`` (default), ``cuda`` or ``cuda:<n>``;
- ``REPUTATION_DETECT_LANGUAGE`` (``1``/``0``, default 1) and
  ``REPUTATION_LANGUAGE_MIN_CONFIDENCE`` (default 0.5): posts stating no language
  (scoring/language.py).
"""
from __future__ import annotations

import json
import re

import dagster as dg

from reputation_pipeline.scoring.language import DEFAULT_MIN_CONFIDENCE
from reputation_pipeline.scoring.models import (
    DEFAULT_REF, InferenceOptions, LanguageOptions, ModelConfig, Scorer, config_version, get_scorer,
)
from reputation_pipeline import settings

_DEVICE = re.compile(r"cpu|cuda(:\d+)?")
# Batch sizing per device kind when the resource leaves it unset. CPU: 64 rows and
# 2,048 padded tokens keep a batch in cache on 2 cores (bench/bench_scoring.py). A GPU
# is only busy with large batches; MiniLM-L6 at 32k tokens needs well under 1 GB of
# activations, which any CUDA card has.
DEVICE_BATCHING = {"cpu": (64, 2048), "cuda": (512, 32768)}


def device_kind(device: str) -> str:
    """'cpu' or 'cuda' for a valid device string; ValueError otherwise."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device.strip()):
        raise ValueError(f"scoring device must be 'cpu', 'cuda' or 'cuda:<n>', got {device!r} "
                         "(REPUTATION_SCORING_DEVICE)")
    return device.strip().split(":")[0]


def check_device_available(device: str) -> None:
    """A CUDA device must exist in this process; imports torch (call where scoring runs)."""
    if device_kind(device) == "cpu":
        return
    from reputation_pipeline.scoring.models import require_torch

    torch = require_torch(f"scoring device {device!r}")

    if not torch.cuda.is_available():
        raise RuntimeError(f"scoring device {device!r} requested (REPUTATION_SCORING_DEVICE) but torch "
                           f"{torch.__version__} sees no CUDA device (CUDA build: {torch.version.cuda or 'none'}); "
                           "use 'cpu' or run where a GPU is visible")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise RuntimeError(f"scoring device {device!r} requested but only {torch.cuda.device_count()} "
                           "CUDA device(s) are visible")


class ScoringModelsResource(dg.ConfigurableResource):
    sentiment_model: str = DEFAULT_REF
    offensive_model: str = DEFAULT_REF
    hate_model: str = DEFAULT_REF
    # JSON object: platform -> {analysis -> model reference}
    platform_models_json: str = "{}"
    quantize: bool = False  # int8 encoder: 1.05-1.3x, up to -0.8pt on val (docs/scoring.md)
    num_threads: int = 2  # intra-op threads of the engine that scores
    # where the encoder runs; not part of the model version: the same weights score on any
    # device (scripts/check_scoring_device.py compares a GPU's scores with the CPU's)
    device: str = "cpu"
    max_batch: int | None = None  # None: the device's default (DEVICE_BATCHING)
    token_budget: int | None = None
    max_length: int = 128
    # posts stating no language: detect it and leave confidently not-covered ones unscored
    detect_language: bool = True
    language_min_confidence: float = DEFAULT_MIN_CONFIDENCE

    def build_model_config(self) -> ModelConfig:
        per_platform = json.loads(self.platform_models_json or "{}")
        if not isinstance(per_platform, dict) or not all(isinstance(v, dict) for v in per_platform.values()):
            raise ValueError("platform_models_json must be a JSON object of objects")
        device = self.device.strip()
        kind = device_kind(device)
        if self.quantize and kind != "cpu":
            raise ValueError("quantize (int8 dynamic quantization) runs on the CPU only: "
                             f"turn it off for device {device!r}")
        if not 0.0 < self.language_min_confidence <= 1.0:
            raise ValueError(f"language_min_confidence must be in (0, 1], got {self.language_min_confidence}")
        batch, budget = DEVICE_BATCHING[kind]
        return ModelConfig(
            models={"sentiment": self.sentiment_model, "offensive": self.offensive_model, "hate": self.hate_model},
            per_platform=per_platform,
            options=InferenceOptions(quantize=self.quantize, max_batch=self.max_batch or batch,
                                     token_budget=self.token_budget or budget, max_length=self.max_length,
                                     device=device, threads=max(0, self.num_threads)),
            language=LanguageOptions(detect=self.detect_language, min_confidence=self.language_min_confidence),
        )

    def model_version(self) -> str:
        """The version scores are written under, without loading the models."""
        return config_version(self.build_model_config())

    def get_scorer(self) -> Scorer:
        config = self.build_model_config()
        check_device_available(config.options.device)
        if self.num_threads > 0 and (config.options.device != "cpu" or config.options.quantize):
            import torch  # the torch engine (scoring/models.py TorchHeads); the CPU engine takes options.threads

            torch.set_num_threads(self.num_threads)
        return get_scorer(config)


def default_scoring_resource() -> ScoringModelsResource:
    return ScoringModelsResource(
        sentiment_model=settings.SENTIMENT_MODEL.get(),
        offensive_model=settings.OFFENSIVE_MODEL.get(),
        hate_model=settings.HATE_MODEL.get(),
        platform_models_json=settings.PLATFORM_MODELS.raw() or "{}",
        quantize=settings.SCORING_QUANTIZE.get(),
        num_threads=settings.SCORING_THREADS.get(),
        # resolved when a run starts (dg.EnvVar), validated where the models load
        device=settings.SCORING_DEVICE.env_var() if settings.SCORING_DEVICE.is_set() else settings.SCORING_DEVICE.default,
        detect_language=settings.DETECT_LANGUAGE.get(),
        language_min_confidence=settings.LANGUAGE_MIN_CONFIDENCE.get(),
    )
