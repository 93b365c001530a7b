"""Arrow schemas of the lake's tables: the contract between stages.

Hive partition columns (``platform``, ``dt``, ``hour`` for raw posts; ``model``,
``dt``, ``hour`` for scores) live in the path only, as Spark and Kafka
Connect's Hive partitioner do, so DuckDB/pyarrow readers with
``hive_partitioning`` see them as columns without a conflict.
"""
import pyarrow as pa

RAW_POSTS_SCHEMA_VERSION = 1

MEDIA_TYPE = pa.list_(pa.struct([("type", pa.string()), ("uri", pa.string())]))

RAW_POSTS = pa.schema(
    [
        ("post_id", pa.string()),
        ("author_id", pa.string()),
        ("author_handle", pa.string()),
        ("author_followers", pa.int64()),
        ("text", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("url", pa.string()),
        ("language", pa.string()),
        ("hashtags", pa.list_(pa.string())),
        ("mentions", pa.list_(pa.string())),
        ("media", MEDIA_TYPE),
        ("likes", pa.int64()),
        ("shares", pa.int64()),
        ("comments", pa.int64()),
        ("views", pa.int64()),
        ("repost_of", pa.string()),
        ("reply_to", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("event_time_source", pa.string()),  # 'created_at' | 'kafka_timestamp'
        ("schema_version", pa.int32()),
        ("kafka_topic", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
    ]
)

QUARANTINE = pa.schema(
    [
        ("reason", pa.string()),  # machine-readable class, e.g. 'not_json'
        ("detail", pa.string()),  # human-readable explanation
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        ("key", pa.binary()),
        ("raw", pa.binary()),  # the message, or its first QUARANTINE_RAW_BYTES when larger
        ("raw_size", pa.int64()),  # the whole message's size in bytes (null in files from before)
        ("raw_sha256", pa.string()),  # of the whole message, to match it against the topic or a file
    ]
)
QUARANTINE_RAW_BYTES = 64 * 1024
