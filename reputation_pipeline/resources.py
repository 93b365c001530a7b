"""Resources shared by every stage (the lake). Stage-specific resources live in
their stage's folder. Everything that differs between deployments is read from
the environment through ``dg.EnvVar``, never hard-coded or put in run config."""
from __future__ import annotations

import os
import re

import dagster as dg
from dagster_aws.s3 import S3Resource

from reputation_pipeline.lake.store import LakeStore, open_lake
from reputation_pipeline import settings

DEFAULT_LAKE = settings.LAKE.default


def lake_uri_from_env() -> str:
    return settings.LAKE.get()


class LakeResource(dg.ConfigurableResource):
    """Where the lake lives: a folder (default ``./lake``) or ``s3://bucket/prefix``.

    S3 access goes through dagster-aws's ``S3Resource``; credentials and the
    endpoint come from the standard AWS environment variables.
    """

    uri: str = DEFAULT_LAKE
    s3: S3Resource | None = None  # None: dagster-aws defaults from the AWS_* environment

    def open(self) -> LakeStore:
        if self.uri.startswith("s3://"):
            s3 = self.s3 or _s3_from_env()
            return open_lake(self.uri, s3.get_client())
        return open_lake(self.uri)


def _s3_from_env() -> S3Resource:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return S3Resource(endpoint_url=endpoint) if endpoint else S3Resource()


def default_lake_resource() -> LakeResource:
    if settings.LAKE.is_set():
        return LakeResource(uri=settings.LAKE.env_var())
    return LakeResource(uri=DEFAULT_LAKE)


PLATFORM_NAME = re.compile(r"[a-z0-9_]{1,32}")  # a platform becomes a lake path segment


def platform_selection() -> frozenset[str] | None:
    """The platforms ``REPUTATION_PLATFORMS`` (comma-separated) narrows ingest to, or None
    when it is unset: then every ``social.posts.<name>`` topic with a valid name is drained."""
    raw = settings.PLATFORMS.get()
    if not raw:
        return None
    names = [p.strip() for p in raw.split(",") if p.strip()]
    bad = [n for n in names if not PLATFORM_NAME.fullmatch(n)]
    if bad:
        raise ValueError(f"REPUTATION_PLATFORMS has invalid names {bad}: use [a-z0-9_]{{1,32}}")
    return frozenset(names)


def platform_refusal(name: str, selection: frozenset[str] | None) -> str | None:
    """Why posts of ``name`` are not ingested, or None when they are."""
    if not PLATFORM_NAME.fullmatch(name):
        return "not a valid platform name ([a-z0-9_]{1,32})"
    if selection is not None and name not in selection:
        return f"not in REPUTATION_PLATFORMS ({', '.join(sorted(selection))})"
    return None


def admitted_platforms(name: str, selection: frozenset[str] | None) -> frozenset[str]:
    """The platforms a drain or import of ``name`` validates posts against: that one when
    ``selection`` admits it, else none (then every post is quarantined as unknown_platform)."""
    return frozenset() if platform_refusal(name, selection) else frozenset({name})
