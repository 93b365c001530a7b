"""Arrow schema of score files (``<lake>/scores/model=<v>/dt=…/hour=…/*.parquet``).
``model``/``dt``/``hour`` are Hive path columns; ``model_version`` is also a
column so a row always says which model produced it."""
import pyarrow as pa

SCORES = pa.schema(
    [
        ("post_id", pa.string()),
        ("platform", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("language", pa.string()),
        ("content_hash", pa.string()),  # sha256[:32] of the normalized text
        ("sentiment_label", pa.string()),  # negative | neutral | positive
        ("sentiment_negative", pa.float32()),
        ("sentiment_neutral", pa.float32()),
        ("sentiment_positive", pa.float32()),
        ("sentiment_score", pa.float32()),  # P(positive) - P(negative), in [-1, 1]
        ("offensive_label", pa.string()),  # not-offensive | offensive
        ("offensive_score", pa.float32()),  # P(offensive)
        ("hate_label", pa.string()),  # not-hate | hate
        ("hate_score", pa.float32()),  # P(hate)
        ("model_version", pa.string()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
        ("unscored_reason", pa.string()),  # null when scored; 'empty_text', 'unsupported_language:<lang>'
        ("source_file", pa.string()),  # the raw file (lake key) the row came from
    ]
)
