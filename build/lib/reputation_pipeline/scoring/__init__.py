"""Scoring stage: transformer sentiment / offensive / hate scores per post.

Exports for the project's Definitions and CLI:
- ``scoring_assets``: [post_scores]
- ``scoring_checks``: partitioned asset checks on post_scores
- ``scoring_resources``: {"scoring_models": ScoringModelsResource} (the asset
  also needs the shared ``lake`` resource)
- ``register_cli(subparsers)``: ``models train`` / ``models eval``

Resolved lazily: the model code (training, eval) imports without Dagster, so it
also runs on a bare training machine.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "post_scores": ("reputation_pipeline.scoring.assets", "post_scores"),
    "SCORING_CHECKS": ("reputation_pipeline.scoring.assets", "SCORING_CHECKS"),
    "register_cli": ("reputation_pipeline.scoring.cli", "register_cli"),
    "ScoringModelsResource": ("reputation_pipeline.scoring.resources", "ScoringModelsResource"),
    "default_scoring_resource": ("reputation_pipeline.scoring.resources", "default_scoring_resource"),
}

__all__ = ["scoring_assets", "scoring_checks", "scoring_resources", "register_cli", "ScoringModelsResource", "post_scores"]


def __getattr__(name: str):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(module), attr)
    if name == "scoring_assets":
        return [__getattr__("post_scores")]
    if name == "scoring_checks":
        return list(__getattr__("SCORING_CHECKS"))
    if name == "scoring_resources":
        return {"scoring_models": __getattr__("default_scoring_resource")()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
