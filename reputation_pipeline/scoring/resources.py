"""Scoring configuration as a Dagster resource: which model serves which
analysis (optionally per platform) and inference settings. Defaults come from
the environment so deployments differ by configuration, not code:

- ``REPUTATION_SENTIMENT_MODEL`` / ``REPUTATION_OFFENSIVE_MODEL`` /
  ``REPUTATION_HATE_MODEL``: ``default`` (committed heads), a heads-bundle
  folder, a local model folder or a hub id;
- ``REPUTATION_PLATFORM_MODELS``: JSON ``{"reddit": {"sentiment": "<ref>"}}``;
- ``REPUTATION_SCORING_QUANTIZE`` (``1``/``0``, default 0), ``REPUTATION_SCORING_THREADS``.
"""
from __future__ import annotations

import json
import os

import dagster as dg

from reputation_pipeline.scoring.models import (
    DEFAULT_REF, InferenceOptions, ModelConfig, Scorer, config_version, get_scorer,
)


class ScoringModelsResource(dg.ConfigurableResource):
    sentiment_model: str = DEFAULT_REF
    offensive_model: str = DEFAULT_REF
    hate_model: str = DEFAULT_REF
    # JSON object: platform -> {analysis -> model reference}
    platform_models_json: str = "{}"
    quantize: bool = False  # int8 encoder: 1.05-1.3x, up to -0.8pt on val (docs/scoring.md)
    num_threads: int = 2
    max_batch: int = 64
    token_budget: int = 2048
    max_length: int = 128

    def build_model_config(self) -> ModelConfig:
        per_platform = json.loads(self.platform_models_json or "{}")
        if not isinstance(per_platform, dict) or not all(isinstance(v, dict) for v in per_platform.values()):
            raise ValueError("platform_models_json must be a JSON object of objects")
        return ModelConfig(
            models={"sentiment": self.sentiment_model, "offensive": self.offensive_model, "hate": self.hate_model},
            per_platform=per_platform,
            options=InferenceOptions(quantize=self.quantize, max_batch=self.max_batch,
                                     token_budget=self.token_budget, max_length=self.max_length),
        )

    def model_version(self) -> str:
        """The version scores are written under, without loading the models."""
        return config_version(self.build_model_config())

    def get_scorer(self) -> Scorer:
        import torch  # here, not at import: only a scoring step needs it

        if self.num_threads > 0:
            torch.set_num_threads(self.num_threads)
        return get_scorer(self.build_model_config())


def default_scoring_resource() -> ScoringModelsResource:
    env = os.environ.get
    return ScoringModelsResource(
        sentiment_model=env("REPUTATION_SENTIMENT_MODEL") or DEFAULT_REF,
        offensive_model=env("REPUTATION_OFFENSIVE_MODEL") or DEFAULT_REF,
        hate_model=env("REPUTATION_HATE_MODEL") or DEFAULT_REF,
        platform_models_json=env("REPUTATION_PLATFORM_MODELS") or "{}",
        quantize=(env("REPUTATION_SCORING_QUANTIZE") or "0") not in ("0", "false", "no"),
        num_threads=int(env("REPUTATION_SCORING_THREADS") or 2),
    )
