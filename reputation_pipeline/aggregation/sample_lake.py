"""A small, deterministic lake in the contract's layout (raw posts + scores) for
tests, demos and docs: calm chatter about every brand, and optionally a crisis
for one brand in the last hours (toxic, viral posts from large accounts).

    raw:    raw/posts/platform=<p>/dt=YYYY-MM-DD/hour=HH/import-<sha16>-<n>.parquet  (RAW_POSTS)
    scores: scores/model=<version>/dt=YYYY-MM-DD/hour=HH/sample.parquet             (scores contract)

Each micro-batch of raw files is written as an import is (lake/layout.py): its files, then
a manifest ``_ingest/imports/<sha256>.json`` that commits them, so readers trust them.

Raw posts contain duplicates on purpose (a faithful Kafka log re-delivers).
"""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyarrow as pa

from reputation_pipeline.lake.layout import import_file_key, import_manifest_key, scores_hour_prefix
from reputation_pipeline.lake.schemas import RAW_POSTS
from reputation_pipeline.lake.store import LakeStore
from reputation_pipeline.scoring.schemas import SCORES  # the scoring stage's own contract
from reputation_pipeline.lake.parquet import parquet_bytes

CALM_TEXTS = [
    "Just tried the new {kw} app, pretty smooth so far",
    "Anyone else using {kw} for work? Works fine for me",
    "Nice customer service from {kw} today, thanks",
    "{kw} shipping was on time, happy with it",
    "Reading about {kw} quarterly results, nothing surprising",
]
CRISIS_TEXTS = [
    "{kw} is a scam, they stole my money and lie to customers #boycott",
    "Disgusting behaviour from {kw} management, absolute garbage company",
    "{kw} ruined my week, worst company ever, never again",
    "Everyone should dump {kw} now, total fraud",
]
PLATFORMS = ["twitter", "reddit", "facebook", "instagram", "tiktok", "youtube"]


@dataclass
class SampleLakeSpec:
    start: datetime  # first hour (UTC, on the hour)
    hours: int = 12
    brands: tuple[str, ...] = ("acme", "globex", "initech")
    posts_per_brand_hour: int = 12
    crisis_brand: str | None = "acme"
    crisis_hours: int = 2  # the last N hours are a crisis for crisis_brand
    crisis_posts_per_hour: int = 40
    model_version: str = "sample-v1"
    seed: int = 7
    unscored_every: int = 17  # every Nth post is unscored (e.g. unsupported language)
    skip_hours: tuple[int, ...] = field(default_factory=tuple)  # hours (index) with no posts at all
    # files per hour, as the live lake has them: posts go to micro-batch int(second of the hour * batches / 3600)
    # (raw sample-<b>.parquet per platform, scores sample-<b>.parquet); a re-delivered copy lands
    # in the next micro-batch
    batches: int = 1


def _post(rng: random.Random, n: int, brand: str, ts: datetime, crisis: bool) -> dict:
    platform = PLATFORMS[n % len(PLATFORMS)]
    text = rng.choice(CRISIS_TEXTS if crisis else CALM_TEXTS).format(kw=brand.capitalize())
    followers = rng.choice([250_000, 1_200_000]) if crisis and n % 5 == 0 else rng.randint(10, 3000)
    post_id = f"{platform}-{brand}-{int(ts.timestamp())}-{n}"
    return {
        "post_id": post_id,
        "author_id": f"u{rng.randint(1, 10_000)}",
        "author_handle": f"user{rng.randint(1, 10_000)}",
        "author_followers": followers,
        "text": text,
        "created_at": ts,
        "url": f"https://{platform}.example/{post_id}",
        "language": "en",
        "hashtags": ["boycott"] if crisis else [],
        "mentions": [],
        "media": [],
        "likes": rng.randint(500, 20_000) if crisis else rng.randint(0, 40),
        "shares": rng.randint(100, 5_000) if crisis else rng.randint(0, 5),
        "comments": rng.randint(50, 2_000) if crisis else rng.randint(0, 10),
        "views": None,
        "repost_of": None,
        "reply_to": None,
        "event_time": ts,
        "event_time_source": "created_at",
        "schema_version": 1,
        "kafka_topic": f"social.posts.{platform}",
        "kafka_partition": 0,
        "kafka_offset": n,
        "kafka_timestamp": ts + timedelta(seconds=5),
        "_crisis": crisis,
    }


def _score(rng: random.Random, post: dict, model_version: str, unscored: bool) -> dict:
    scored_at = post["event_time"] + timedelta(minutes=3)
    base = {
        "post_id": post["post_id"],
        "platform": post["kafka_topic"].rsplit(".", 1)[-1],
        "event_time": post["event_time"],
        "language": "en",
        "language_source": "stated",
        "content_hash": hashlib.sha256(post["text"].encode()).hexdigest(),
        "model_version": model_version,
        "scored_at": scored_at,
    }
    if unscored:  # as the scorer leaves a post in a language the models do not cover
        return base | {
            "language": None, "language_source": "detected", "detected_language": "es", "language_confidence": 0.93,
            "sentiment_label": None, "sentiment_negative": None, "sentiment_neutral": None,
            "sentiment_positive": None, "sentiment_score": None, "offensive_score": None, "offensive_label": None,
            "hate_score": None, "hate_label": None, "unscored_reason": "unsupported_language:es",
        }
    if post["_crisis"]:
        neg = rng.uniform(0.85, 0.98)
        off, hate = rng.uniform(0.7, 0.97), rng.uniform(0.3, 0.9)
    else:
        neg = rng.uniform(0.01, 0.15)
        off, hate = rng.uniform(0.0, 0.1), rng.uniform(0.0, 0.05)
    pos = (1 - neg) * rng.uniform(0.3, 0.9)
    neu = 1 - neg - pos
    label = max((neg, "negative"), (neu, "neutral"), (pos, "positive"))[1]
    return base | {
        "sentiment_label": label, "sentiment_negative": neg, "sentiment_neutral": neu,
        "sentiment_positive": pos, "sentiment_score": pos - neg, "offensive_score": off,
        "offensive_label": "offensive" if off >= 0.5 else "not-offensive",
        "hate_score": hate, "hate_label": "hate" if hate >= 0.5 else "not-hate",
        "unscored_reason": None,
    }


def _batch_sha(spec: SampleLakeSpec, batch: int) -> str:
    return hashlib.sha256(f"sample-lake:{spec.seed}:{spec.start.isoformat()}:{batch}".encode()).hexdigest()


def sample_raw_key(spec: SampleLakeSpec, platform: str, dt: str, hour: str, batch: int = 0) -> str:
    return import_file_key(platform, dt, hour, _batch_sha(spec, batch), batch)


def write_committed_raw(store: LakeStore, platform: str, dt: str, hour: str, rows: list[dict], tag: str) -> str:
    """One more raw file, committed as an import of its own (e.g. a re-delivered copy in a
    test); returns its key."""
    sha = hashlib.sha256(f"sample-extra:{tag}".encode()).hexdigest()
    key = import_file_key(platform, dt, hour, sha, 0)
    store.put(key, _parquet(rows, RAW_POSTS))
    store.put(import_manifest_key(sha), json.dumps({"source_name": tag}).encode())
    return key


def _parquet(rows: Iterable[dict], schema: pa.Schema) -> bytes:
    return parquet_bytes(pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema))


def write_sample_lake(store: LakeStore, spec: SampleLakeSpec, only_batches: Iterable[int] | None = None) -> dict:
    """Write the sample into ``store`` (with ``only_batches``, the files of those
    micro-batches only: the same sample, written in steps); returns counts."""
    rng = random.Random(spec.seed)
    raw_by_part: dict[tuple[str, str, str, int], list[dict]] = {}
    scores_by_part: dict[tuple[str, str, int], list[dict]] = {}
    n = 0
    posts_written = 0
    for h in range(spec.hours):
        if h in spec.skip_hours:
            continue
        hour_start = spec.start + timedelta(hours=h)
        in_crisis = spec.crisis_brand is not None and h >= spec.hours - spec.crisis_hours
        for brand in spec.brands:
            count = spec.posts_per_brand_hour
            for i in range(count + (spec.crisis_posts_per_hour if in_crisis and brand == spec.crisis_brand else 0)):
                n += 1
                crisis = in_crisis and brand == spec.crisis_brand and i >= count
                ts = hour_start + timedelta(seconds=rng.randint(0, 3599))
                post = _post(rng, n, brand, ts, crisis)
                batch = (ts.minute * 60 + ts.second) * spec.batches // 3600
                key = (post["kafka_topic"].rsplit(".", 1)[-1], ts.strftime("%Y-%m-%d"), ts.strftime("%H"))
                copies = 2 if n % 11 == 0 else 1  # re-delivered messages
                for c in range(copies):
                    b = min(batch + c, spec.batches - 1)
                    raw_by_part.setdefault((*key, b), []).append(post | {"kafka_offset": n * 10 + c})
                posts_written += 1
                scores_by_part.setdefault((*key[1:], batch), []).append(
                    _score(rng, post, spec.model_version, unscored=(n % spec.unscored_every == 0))
                    | {"source_file": sample_raw_key(spec, *key, batch)}
                )
    wanted = set(range(spec.batches) if only_batches is None else only_batches)
    raw_files = score_files = 0
    for (platform, dt, hour, b), rows in sorted(raw_by_part.items()):
        if b in wanted:
            store.put(sample_raw_key(spec, platform, dt, hour, b), _parquet(rows, RAW_POSTS))
            raw_files += 1
    for b in sorted(wanted):  # the commit of each micro-batch, after its files
        store.put(import_manifest_key(_batch_sha(spec, b)), json.dumps({"source_name": "sample lake", "batch": b}).encode())
    for (dt, hour, b), rows in sorted(scores_by_part.items()):
        if b in wanted:
            name = "sample.parquet" if spec.batches == 1 else f"sample-{b}.parquet"
            store.put(scores_hour_prefix(spec.model_version, dt, hour) + name, _parquet(rows, SCORES))
            score_files += 1
    return {"posts": posts_written, "raw_files": raw_files, "score_files": score_files}
