"""Freshness policies: when a stage falls behind, the UI says so. Ingest that
stops must never look like calm, so the raw lake has the tightest window."""
from datetime import timedelta

import dagster as dg

INGEST = dg.FreshnessPolicy.time_window(warn_window=timedelta(minutes=5), fail_window=timedelta(minutes=15))
SCORING = dg.FreshnessPolicy.time_window(warn_window=timedelta(minutes=10), fail_window=timedelta(minutes=30))
AGGREGATION = dg.FreshnessPolicy.time_window(warn_window=timedelta(minutes=20), fail_window=timedelta(hours=1))

BY_KEY = {"raw_posts": INGEST, "post_scores": SCORING, "brand_alerts": AGGREGATION, "published_marts": AGGREGATION}
MARTS_PREFIXES = ("fct_", "mart_")


def policy_for(spec: dg.AssetSpec) -> dg.FreshnessPolicy | None:
    name = spec.key.path[-1]
    if name in BY_KEY:
        return BY_KEY[name]
    if name.startswith(MARTS_PREFIXES):
        return AGGREGATION
    return None


def with_freshness(assets: list) -> list:
    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        policy = policy_for(spec)
        return dg.apply_freshness_policy(spec, policy) if policy and spec.freshness_policy is None else spec

    return list(dg.map_asset_specs(apply, assets))
