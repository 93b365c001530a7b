"""Realistic synthetic posts (and malformed messages) for demos, tests and benchmarks.

Deterministic for a given seed: several brands, authors with heavy-tailed
follower counts, hashtags, mentions, emoji, media in object storage, reposts,
replies and late posts; optionally a crisis for one brand (a burst of angry,
offensive, widely shared posts)."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

# Keys are the brand ids of dbt_project/seeds/brands.csv, so synthetic posts
# mention the brands the default seed monitors.
BRANDS = {
    "acme": {"name": "Acme", "tag": "Acme", "handle": "acme"},
    "globex": {"name": "Globex", "tag": "Globex", "handle": "globex"},
    "initech": {"name": "Initech", "tag": "Initech", "handle": "initech"},
}

POSITIVE = [
    "Loving my new {b} experience, honestly the best {thing} I've had 😍 #{tag}",
    "Shoutout to @{handle} for the amazing service today! 🙌",
    "{b} just keeps getting better. Great {thing}, great people. #{tag} #happy",
    "Five stars for {b}, smooth {thing} and friendly staff ✨",
]
NEUTRAL = [
    "Anyone know if {b} changed their {thing} policy this week? #{tag}",
    "Trying {b} for the first time tomorrow, we'll see. @{handle}",
    "{b} announced a new {thing} lineup today #{tag}",
    "Reading the {b} quarterly report, nothing surprising there.",
]
NEGATIVE = [
    "Really disappointed with {b}, the {thing} was late again 😞 #{tag}",
    "@{handle} three hours on hold and nobody answers. Terrible service.",
    "Not happy with {b} lately, prices up and {thing} down #{tag}",
]
CRISIS = [
    "{b} is a DISGRACE. Their {thing} nearly killed my kid and they don't care 🤬 #{tag}Fail #boycott{tag}",
    "Never flying/buying {b} again. Absolute scumbags, lying to customers' faces @{handle} #boycott{tag}",
    "The {b} leak is disgusting. These idiots should be ashamed, total garbage company #{tag}Scandal",
    "@{handle} you stupid clowns, fix the {thing} or get sued. Worst company on earth #boycott{tag}",
    "{b} exposed: unsafe {thing}, cover-ups, and lies. Share before they delete this! #{tag}Scandal",
]
THINGS = ["flight", "phone", "delivery", "update", "battery", "meal", "car", "support", "app"]
EMOJI = ["🔥", "😂", "👍", "💯", "🙄", "😡", "❤️", ""]
LANGS = ["en"] * 18 + ["es", "de"]


@dataclass
class SyntheticConfig:
    platform: str
    seed: int = 7
    run_id: str = "r0"
    crisis_brand: str | None = None
    crisis_share: float = 0.0  # fraction of posts that are crisis posts about crisis_brand
    late_share: float = 0.03
    repost_share: float = 0.08
    now: datetime | None = None


def _followers(rng: random.Random) -> int:
    # Pareto(alpha=1.2): most accounts are small, a few are huge
    return min(int(50 * rng.paretovariate(1.2)), 150_000_000)


class PostGenerator:
    def __init__(self, cfg: SyntheticConfig):
        self.cfg = cfg
        self.rng = random.Random(f"{cfg.seed}:{cfg.platform}:{cfg.run_id}")
        self.now = cfg.now or datetime.now(timezone.utc)
        self.authors = [(f"u{self.rng.randrange(10**9)}", f"user_{i}", _followers(self.rng)) for i in range(5000)]
        self.recent: list[dict] = []
        self.n = 0

    def post(self) -> dict:
        cfg, rng = self.cfg, self.rng
        self.n += 1
        post_id = f"{cfg.platform[:2]}-{cfg.run_id}-{self.n}"
        author_id, handle, followers = rng.choice(self.authors)
        created = self.now - timedelta(seconds=rng.uniform(0, 30))
        if rng.random() < cfg.late_share:
            created -= timedelta(hours=rng.uniform(1, 36))  # a late post for a past window
        crisis = cfg.crisis_brand is not None and rng.random() < cfg.crisis_share
        if self.recent and rng.random() < cfg.repost_share and not crisis:
            orig = rng.choice(self.recent)
            text, repost_of = f"RT @{orig['author_handle']}: {orig['text']}", orig["post_id"]
            brand = None
        else:
            repost_of = None
            brand = cfg.crisis_brand if crisis else rng.choice(list(BRANDS))
            pool = CRISIS if crisis else rng.choices([POSITIVE, NEUTRAL, NEGATIVE], weights=[4, 4, 2])[0]
            info = BRANDS.get(brand) or {"name": brand, "tag": brand.replace(" ", ""), "handle": brand.replace(" ", "").lower()}
            text = rng.choice(pool).format(b=info["name"], tag=info["tag"], handle=info["handle"], thing=rng.choice(THINGS))
            text = f"{text} {rng.choice(EMOJI)}".strip()
        if crisis:
            followers = max(followers, rng.randint(20_000, 2_000_000))
        scale = 20 if crisis else 1
        post = {
            "post_id": post_id,
            "platform": cfg.platform,
            "author_id": author_id,
            "author_handle": handle,
            "author_followers": followers,
            "text": text,
            "created_at": created.isoformat(timespec="milliseconds"),
            "url": f"https://{cfg.platform}.example.com/{handle}/status/{post_id}",
            "language": "en" if crisis else rng.choice(LANGS),
            "media": ([{"type": "image", "uri": f"s3://social-media-raw/{cfg.platform}/{post_id}/0.jpg"}]
                      if rng.random() < 0.2 else []),
            "metrics": {"likes": int(rng.expovariate(1 / (15 * scale))), "shares": int(rng.expovariate(1 / (3 * scale))),
                        "comments": int(rng.expovariate(1 / (4 * scale)))},
            "repost_of": repost_of,
            "reply_to": None,
        }
        if brand is not None:
            self.recent = (self.recent + [post])[-200:]
        return post


BAD_CLASSES = [
    "not_json", "invalid_utf8", "not_object", "missing_field", "wrong_type", "absurd_timestamp_future",
    "absurd_timestamp_past", "oversized_text", "unknown_platform", "path_escape", "sql_injection", "null_byte",
]
# the quarantine reason each class is expected to produce
BAD_REASONS = {
    "not_json": "not_json", "invalid_utf8": "invalid_utf8", "not_object": "not_object",
    "missing_field": "missing_field", "wrong_type": "wrong_type", "absurd_timestamp_future": "absurd_timestamp",
    "absurd_timestamp_past": "absurd_timestamp", "oversized_text": "oversized_text", "unknown_platform": "unknown_platform",
    "path_escape": "unsafe_value", "sql_injection": "unsafe_value", "null_byte": "null_byte",
}


def bad_message(kind: str, good: dict) -> bytes:
    """A malformed message of the given class, derived from a good post."""
    p = dict(good)
    if kind == "not_json":
        return b"{this is not json"
    if kind == "invalid_utf8":
        return json.dumps(p).encode()[:-2] + b"\xff\xfe\"}"
    if kind == "not_object":
        return json.dumps([p["post_id"], p["text"]]).encode()
    if kind == "missing_field":
        p.pop("author_id")
    elif kind == "wrong_type":
        p["author_followers"] = "lots"
    elif kind == "absurd_timestamp_future":
        p["created_at"] = "2999-01-01T00:00:00+00:00"
    elif kind == "absurd_timestamp_past":
        p["created_at"] = "1970-01-01T00:00:00+00:00"
    elif kind == "oversized_text":
        p["text"] = "x" * 50_000
    elif kind == "unknown_platform":
        p["platform"] = "myspace"
    elif kind == "path_escape":
        p["post_id"] = "../../../../etc/passwd"
    elif kind == "sql_injection":
        p["post_id"] = "x'); DROP TABLE posts; --"
    elif kind == "null_byte":
        p["text"] = "hello\u0000world"
    else:
        raise ValueError(f"unknown bad-message class {kind!r}")
    return json.dumps(p).encode()
