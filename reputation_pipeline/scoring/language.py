"""Language of posts that state none, for the rule that leaves languages the models
do not cover unscored (``Scorer.score``).

The detector is py3langid (langid.py's naive Bayes over byte n-grams, 97 languages plus
a few regional ones; its model ships in the wheel as ``data/model.npz.xz``, numpy is its
only dependency, nothing is downloaded). It costs about 0.1 ms a text on one core, where
the encoder costs several ms a post. Its probabilities are normalized per text (softmax
with a temperature of sqrt(bytes)), so a short tweet gets a flat distribution rather than
a confident wrong answer.

Short texts are where detection goes wrong, and a wrong "not covered" silently drops an
English post from every alert. So a post is only marked as not covered when the detector
is confident both ways: the top language is not covered with at least
``min_confidence``, and the covered languages together hold at most
``MAX_COVERED_PROBABILITY``. Anything less keeps the post scored as the models' language.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_MIN_CONFIDENCE = 0.5
# Measured on English tweets (TweetEval validation, 4.3k; SemEval-2017 4A, 49.6k): English
# posts full of names and dates often rank an English-lexified creole first (Nigerian
# Pidgin 'pcm' at 0.5-0.8, with English still at 10-35%), which the top-language threshold
# alone would drop; English at 1% or less only happened for posts that are in fact
# Tagalog, Indonesian, Dutch, Spanish or Italian, or mostly so (23 of 49.6k).
MAX_COVERED_PROBABILITY = 0.01
# tags that say nothing about the language: a post stating one of them is treated as
# stating none ('zxx' is also what py3langid answers for text without linguistic content)
UNSET_TAGS = frozenset({"", "und", "zxx", "unknown", "mul"})

# tokens the normalizer writes in place of mentions and links, and the hashtag sign: they
# are not the author's words and would pull every post towards English
_PLACEHOLDERS = re.compile(r"(?<!\w)@user\b|(?<!\w)http\b|#")
_WS = re.compile(r"\s+")


def primary_subtag(tag: str | None) -> str:
    """'pt-BR' -> 'pt', 'EN_us' -> 'en'; '' for None."""
    return (tag or "").strip().lower().replace("_", "-").split("-")[0]


def is_unset(tag: str | None) -> bool:
    return primary_subtag(tag) in UNSET_TAGS


def detection_text(normalized: str) -> str:
    return _WS.sub(" ", _PLACEHOLDERS.sub(" ", normalized)).strip()


@dataclass(frozen=True)
class Detection:
    language: str | None  # top language (ISO 639-1, or 639-3 where it has no 639-1 code); None: no text
    confidence: float  # its probability
    # the probability of each covered language, only computed when the top language is a
    # confident candidate for some model not covering it (the only case the rule needs them)
    covered: dict[str, float] | None = None


class LanguageDetector:
    """py3langid with normalized probabilities; the model loads once per process, on
    first use (0.7 s), never at import: the code location imports this module."""

    _identifier = None
    _lock = threading.Lock()

    def __init__(self, min_confidence: float = DEFAULT_MIN_CONFIDENCE):
        if not 0.0 < min_confidence <= 1.0:
            raise ValueError(f"language min_confidence must be in (0, 1], got {min_confidence}")
        self.min_confidence = min_confidence

    @classmethod
    def identifier(cls):
        with cls._lock:
            if cls._identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                cls._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            return cls._identifier

    def detect(self, normalized: str, language_sets: Iterable[Sequence[str]]) -> Detection:
        """The language of a normalized text (``normalize.normalize_text``);
        ``language_sets``: the languages of each model that may score it."""
        text = detection_text(normalized)
        if not text:
            return Detection(None, 0.0)
        ident = self.identifier()
        lang, conf = ident.classify(text)
        sets = [set(s) for s in language_sets]
        if conf < self.min_confidence or lang in UNSET_TAGS or all(lang in s for s in sets):
            return Detection(lang, float(conf))
        # a candidate: the full distribution (1.5x the cost of classify, for few posts)
        probs = dict(ident.rank(text))
        return Detection(lang, float(conf), {c: float(probs.get(c, 0.0)) for c in set().union(*sets)})

    def not_covered(self, d: Detection, languages: Sequence[str]) -> bool:
        """True when the detection is confident that the text is in none of ``languages``."""
        if d.language is None or d.language in UNSET_TAGS or d.language in languages:
            return False
        if d.confidence < self.min_confidence or d.covered is None:
            return False
        return sum(d.covered.get(c, 0.0) for c in languages) <= MAX_COVERED_PROBABILITY
