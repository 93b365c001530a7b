"""Scoring stage: transformer sentiment / offensive / hate scores per post.

Exports for the project's Definitions and CLI:
- ``scoring_assets``: [post_scores]
- ``scoring_checks``: partitioned asset checks on post_scores
- ``scoring_resources``: {"scoring_models": ScoringModelsResource} (the asset
  also needs the shared ``lake`` resource)
- ``register_cli(subparsers)``: ``models train`` / ``models eval``
"""
from reputation_pipeline.scoring.assets import SCORING_CHECKS, post_scores
from reputation_pipeline.scoring.cli import register_cli
from reputation_pipeline.scoring.resources import ScoringModelsResource, default_scoring_resource

scoring_assets = [post_scores]
scoring_checks = list(SCORING_CHECKS)
scoring_resources = {"scoring_models": default_scoring_resource()}

__all__ = ["scoring_assets", "scoring_checks", "scoring_resources", "register_cli", "ScoringModelsResource", "post_scores"]
