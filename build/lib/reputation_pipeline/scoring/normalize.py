"""Text normalization applied before scoring (and identically at training time).

TweetEval-style models were trained on text where user mentions are ``@user``
and links are ``http``; we do the same. Emoji are kept (optionally also spelled
out for encoders whose vocabulary maps them to ``[UNK]``), CamelCase hashtags
are split into words, and a content hash of the normalized text lets identical
texts (reposts) be scored once.
"""
from __future__ import annotations

import hashlib
import html
import re
import unicodedata

_MENTION = re.compile(r"(?<![\w@])@\w{1,50}")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WS = re.compile(r"\s+")
_ESCAPED_UNICODE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _split_hashtag(match: re.Match[str]) -> str:
    tag = match.group(1)
    # only split tags with internal case/digit changes (#BrandFail -> #Brand Fail);
    # all-lowercase tags are left for the subword tokenizer
    parts = [p for p in _CAMEL.split(tag) if p]
    return "#" + " ".join(parts)


def _is_emoji(ch: str) -> bool:
    cp = ord(ch)
    if cp < 0x2100:
        return False
    return unicodedata.category(ch) == "So" or 0x1F000 <= cp <= 0x1FAFF


def describe_emoji(text: str) -> str:
    """Keep each emoji and add its Unicode name, e.g. '😂' -> '😂 (face with tears of joy)'.

    For WordPiece encoders (MiniLM) that see emoji as [UNK]; the glyph stays so
    tokenizers that know it still see it. Variation selectors / ZWJ dropped."""
    out: list[str] = []
    for ch in text:
        if ch in ("\ufe0f", "\ufe0e", "\u200d"):
            continue
        if _is_emoji(ch):
            try:
                name = unicodedata.name(ch).lower()
            except ValueError:
                out.append(ch)
                continue
            out.append(f" {ch} ({name}) ")
        else:
            out.append(ch)
    return "".join(out)


def normalize_text(text: str | None) -> str:
    """The canonical text that is hashed and scored."""
    if not text:
        return ""
    t = html.unescape(text)
    t = _ESCAPED_UNICODE.sub(lambda m: chr(int(m.group(1), 16)), t)
    t = _URL.sub("http", t)
    t = _MENTION.sub("@user", t)
    t = _HASHTAG.sub(_split_hashtag, t)
    t = _WS.sub(" ", t).strip()
    return t


def model_input(normalized: str, emoji: str = "keep") -> str:
    """Model-specific last step: ``emoji='describe'`` spells emoji out."""
    if emoji == "describe":
        return _WS.sub(" ", describe_emoji(normalized)).strip()
    return normalized


def content_hash(normalized: str) -> str:
    """Stable hash of the normalized text (reposts share it)."""
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()[:32]
