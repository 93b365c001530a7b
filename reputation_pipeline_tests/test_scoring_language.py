"""Posts stating no language (scoring/language.py): the detector's confidence rule, the
scorer leaving confidently not-covered posts unscored while English ones score as before,
the count in the window mart, and score files written before the language columns."""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from reputation_pipeline.aggregation.sample_lake import SampleLakeSpec, write_committed_raw, write_sample_lake
from reputation_pipeline.lake.store import open_lake
from reputation_pipeline.scoring.language import (
    MAX_COVERED_PROBABILITY, Detection, LanguageDetector, detection_text,
)
from reputation_pipeline.scoring.models import LanguageOptions, ModelConfig, Scorer
from reputation_pipeline.scoring.pipeline import read_partition_scores, score_partition
from reputation_pipeline.scoring.resources import ScoringModelsResource, default_scoring_resource

SPANISH = "El servicio al cliente de Acme es un desastre, nunca más compro aquí"
ARABIC = "خدمة عملاء Acme سيئة جدا ولن أشتري منها مرة أخرى"
ENGLISH = [
    "I absolutely love the new @Acme phone, best purchase ever! 😍 https://t.co/x",
    "@Acme your customer service is a disgrace, you stupid idiots #WorstServiceEver",
    "Honestly the Acme update is fine, nothing special",
    "Acme stock closes at 102 dollars today",
    # English full of names and dates: the detector ranks Nigerian Pidgin first here
    "Any one want two Jason Aldean tickets for September 11th? Text or DM me",
    "lol",
]


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer()


def test_confidence_rule():
    rule = LanguageDetector(0.5)
    en = ("en",)
    assert rule.not_covered(Detection("es", 0.93, {"en": 0.0}), en)
    # below the threshold: kept as English
    assert not rule.not_covered(Detection("es", 0.45, {"en": 0.0}), en)
    # confident top language, but English still holds real probability (an English-lexified creole)
    assert not rule.not_covered(Detection("pcm", 0.75, {"en": 0.2}), en)
    assert not rule.not_covered(Detection("tl", 0.9, {"en": MAX_COVERED_PROBABILITY * 2}), en)
    assert rule.not_covered(Detection("tl", 0.9, {"en": MAX_COVERED_PROBABILITY}), en)
    # a covered language, text without linguistic content, no text
    assert not rule.not_covered(Detection("en", 0.99), en)
    assert not rule.not_covered(Detection("es", 0.93, {"en": 0.0, "es": 0.93}), ("en", "es"))
    assert not rule.not_covered(Detection("zxx", 0.9, {"en": 0.0}), en)
    assert not rule.not_covered(Detection(None, 0.0), en)
    # the threshold is the setting
    assert not LanguageDetector(0.95).not_covered(Detection("es", 0.93, {"en": 0.0}), en)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="min_confidence"):
            LanguageDetector(bad)


def test_detector_on_real_texts():
    det = LanguageDetector()
    assert detection_text("@user love it http #Brand Fail") == "love it Brand Fail"
    for text, lang in ((SPANISH, "es"), (ARABIC, "ar")):
        d = det.detect(text, [("en",)])
        assert d.language == lang and det.not_covered(d, ("en",)), d
    for text in ENGLISH:
        d = det.detect(text, [("en",)])
        assert not det.not_covered(d, ("en",)), (text, d)
    # a model that covers Spanish scores the Spanish post
    d = det.detect(SPANISH, [("en", "es")])
    assert not det.not_covered(d, ("en", "es"))


def test_scorer_leaves_confidently_uncovered_posts_unscored(scorer):
    texts = [*ENGLISH, SPANISH, ARABIC, "Hola amigos", ""]
    langs = [None, "und", None, None, None, None, None, None, "es", None]
    res = scorer.score(texts, languages=langs)
    n = len(ENGLISH)
    assert res.unscored_reason == [None] * n + ["unsupported_language:es", "unsupported_language:ar",
                                                "unsupported_language:es", "empty_text"]
    assert np.isnan(res.probs["sentiment"][n:]).all() and not np.isnan(res.probs["sentiment"][:n]).any()
    assert res.language_source[n:] == ["detected", "detected", "stated", None]
    assert res.detected_language[n:n + 2] == ["es", "ar"] and res.detected_language[n + 2:] == [None, None]
    assert res.language_source[0] == "detected" and res.detected_language[0] == "en"
    assert res.language_source[3] == "assumed"  # a short calm text: no confident language, scored as English
    assert all(0 <= c <= 1 for c in res.language_confidence[:n + 2])

    # English posts without a language score exactly as with detection off
    plain = Scorer(ModelConfig(language=LanguageOptions(detect=False)))
    off = plain.score(ENGLISH)
    on = scorer.score(ENGLISH)
    for task in on.probs:
        np.testing.assert_array_equal(on.probs[task], off.probs[task])
    assert off.unscored_reason == [None] * n and off.language_source == ["assumed"] * n
    assert off.detected_language == [None] * n
    # with detection off a stated language still decides
    assert plain.score([SPANISH, SPANISH], languages=[None, "es"]).unscored_reason == [None, "unsupported_language:es"]


def test_uncovered_language_posts_are_counted_in_the_window_mart(tmp_path, scorer):
    """Real scoring of an hour holding Spanish and Arabic posts that state no language,
    then the window mart: they are the brand window's unsupported-language mentions."""
    from reputation_pipeline_tests.test_dbt_build import dbt_build

    t0 = datetime(2026, 11, 20, 0, tzinfo=timezone.utc)
    lake = str(tmp_path / "lake")
    store = open_lake(lake)
    write_sample_lake(store, SampleLakeSpec(start=t0, hours=1, crisis_brand=None))
    for key in list(store.list("scores/")):  # score the hour with the real models instead
        store.delete(key)
    sample = pq.read_table(io.BytesIO(store.get(next(k for k in store.list("raw/posts/platform=twitter/")))))
    base = {k: v for k, v in sample.to_pylist()[0].items()}
    extra = [base | {"post_id": f"lang-{i}", "text": text, "language": None, "kafka_offset": 10_000 + i,
                     "created_at": t0 + timedelta(minutes=30), "event_time": t0 + timedelta(minutes=30)}
             for i, text in enumerate([SPANISH, ARABIC, SPANISH.replace("nunca", "jamás"), ENGLISH[2]])]
    write_committed_raw(store, "twitter", "2026-11-20", "00", extra, "languages")
    result = score_partition(store, scorer, "2026-11-20", "00", ["twitter", "reddit", "facebook", "instagram",
                                                                 "tiktok", "youtube"])
    assert result.unsupported_language_rows == 3
    rows = {r["post_id"]: r for r in read_partition_scores(store, scorer.model_version, "2026-11-20", "00").to_pylist()}
    assert rows["lang-0"]["unscored_reason"] == "unsupported_language:es" and rows["lang-0"]["sentiment_score"] is None
    assert rows["lang-1"]["unscored_reason"] == "unsupported_language:ar"
    assert rows["lang-0"]["language_source"] == "detected" and rows["lang-0"]["detected_language"] == "es"
    assert rows["lang-3"]["unscored_reason"] is None and rows["lang-3"]["sentiment_score"] is not None

    db = str(tmp_path / "wh.duckdb")
    ok, results = dbt_build(lake, db, t0, t0 + timedelta(hours=1), select="+fct_brand_risk_window")
    assert ok, {k: v for k, v in results.items() if v not in ("success", "pass")}
    conn = duckdb.connect(db, read_only=True)
    got = {b: (m, u, langs) for b, m, u, langs in conn.execute(
        "select brand, unsupported_language_mentions, unscored_mentions, unsupported_languages "
        "from marts.fct_brand_risk_window").fetchall()}
    assert got["acme"] == (3, 3, ["ar", "es"])
    assert got["globex"] == (0, 0, []) and got["initech"] == (0, 0, [])
    sources = dict(conn.execute("select post_id, language_source from staging.stg_post_scores "
                                "where post_id like 'lang-%'").fetchall())
    assert sources["lang-0"] == "detected"
    conn.close()


def test_language_settings_come_from_the_environment(monkeypatch):
    for name in ("REPUTATION_DETECT_LANGUAGE", "REPUTATION_LANGUAGE_MIN_CONFIDENCE"):
        monkeypatch.delenv(name, raising=False)
    default = default_scoring_resource()
    assert default.build_model_config().language == LanguageOptions(detect=True, min_confidence=0.5)
    monkeypatch.setenv("REPUTATION_DETECT_LANGUAGE", "0")
    monkeypatch.setenv("REPUTATION_LANGUAGE_MIN_CONFIDENCE", "0.8")
    changed = default_scoring_resource()
    assert changed.build_model_config().language == LanguageOptions(detect=False, min_confidence=0.8)
    assert changed.model_version() == default.model_version()
    with pytest.raises(ValueError, match="language_min_confidence"):
        ScoringModelsResource(language_min_confidence=0.0).build_model_config()


def _drop_language_columns(store, key: str) -> None:
    """Rewrite a score file as files were written before the language columns existed."""
    table = pq.read_table(io.BytesIO(store.get(key)))
    table = table.drop_columns(["language_source", "detected_language", "language_confidence"])
    buf = io.BytesIO()
    pq.write_table(table, buf)
    store.delete(key)
    store.put(key, buf.getvalue())


def test_score_files_without_the_language_columns_still_read(tmp_path, scorer):
    from reputation_pipeline.scoring.pipeline import partition_validity, score_table
    from reputation_pipeline_tests.conftest_scoring import raw_table

    store = open_lake(str(tmp_path / "lake"))
    table = score_table(scorer, raw_table([{"post_id": "a", "text": ENGLISH[0]}, {"post_id": "b", "text": SPANISH,
                                                                                  "language": None}]),
                        "twitter", "raw/x.parquet")
    key = f"scores/model={scorer.model_version}/dt=2026-11-26/hour=03/twitter__old.parquet"
    buf = io.BytesIO()
    pq.write_table(table, buf)
    store.put(key, buf.getvalue())
    _drop_language_columns(store, key)
    rows = read_partition_scores(store, scorer.model_version, "2026-11-26", "03").to_pylist()
    assert [(r["post_id"], r["language_source"], r["unscored_reason"]) for r in rows] == [
        ("a", None, None), ("b", None, "unsupported_language:es")]
    n, problems = partition_validity(store, scorer.model_version, "2026-11-26", "03")
    assert n == 2 and not any(problems.values())


def test_window_build_over_score_files_without_the_language_columns(tmp_path):
    """An hour whose score files all predate the language columns builds; they read as null."""
    from reputation_pipeline_tests.test_dbt_build import dbt_build

    t0 = datetime(2026, 11, 20, 0, tzinfo=timezone.utc)
    lake = str(tmp_path / "lake")
    store = open_lake(lake)
    write_sample_lake(store, SampleLakeSpec(start=t0, hours=2, crisis_brand=None))
    # every file old: no file the read covers has the columns (union_by_name cannot add them)
    keys = list(store.list("scores/"))
    new_files = {k: store.get(k) for k in keys if "/hour=01/" in k}
    assert new_files and len(keys) > len(new_files)
    for key in keys:
        _drop_language_columns(store, key)
    db = str(tmp_path / "wh.duckdb")
    ok, results = dbt_build(lake, db, t0, t0 + timedelta(hours=1), select="+fct_brand_risk_window")
    assert ok, {k: v for k, v in results.items() if v not in ("success", "pass")}
    conn = duckdb.connect(db, read_only=True)
    assert conn.execute("select count(*), count(language_source) from staging.stg_post_scores").fetchone()[1] == 0
    # the reason is in the old files too: the count does not need the new columns
    assert conn.execute("select sum(unsupported_language_mentions) = sum(unscored_mentions), sum(unscored_mentions) > 0 "
                        "from marts.fct_brand_risk_window").fetchone() == (True, True)
    conn.close()
    # the next hour's files have them: both hours in one warehouse
    for key, data in new_files.items():
        store.delete(key)
        store.put(key, data)
    ok, results = dbt_build(lake, db, t0 + timedelta(hours=1), t0 + timedelta(hours=2), select="+fct_brand_risk_window")
    assert ok, {k: v for k, v in results.items() if v not in ("success", "pass")}
    conn = duckdb.connect(db, read_only=True)
    assert conn.execute("select count(language_source) from staging.base_post_scores").fetchone()[0] > 0
    conn.close()
