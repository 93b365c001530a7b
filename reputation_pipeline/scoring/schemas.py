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
        # Where the language the row was judged in came from: 'stated' (the post's tag, in
        # `language`), 'detected' (no tag; the detector was confident, scoring/language.py),
        # 'assumed' (no tag, no confident detection: scored as the models' language); null
        # without text or tag. Files written before these columns lack them (read as null).
        ("language_source", pa.string()),
        ("detected_language", pa.string()),  # the detector's top language, rows without a tag
        ("language_confidence", pa.float32()),  # its probability
    ]
)


def conform(table: pa.Table) -> pa.Table:
    """A score file's table in the current schema: columns added since it was written
    are null."""
    for f in SCORES:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    return table.select(SCORES.names).cast(SCORES)
