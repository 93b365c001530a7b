-- The window's raw rows as the lake holds them (one row per Kafka message: a post_id can
-- repeat), kept in the warehouse with the file each came from (lake_key). A window build
-- reloads its partitions; a micro-batch appends only the lake files that are new
-- (reputation_pipeline/aggregation/merge.py), so stg_posts can deduplicate the posts those
-- files name without re-reading the hour's earlier files. Rows of windows older than the
-- merge retention are dropped by the merge bookkeeping (they are only a working copy).
-- (incremental, appended, tag `window`: dbt_project.yml)
{{ config(pre_hook="{{ delete_lake_rows('raw_posts') }}") }}
select *
from {{ lake_rows('raw_posts', {
    'post_id': 'varchar', 'platform': 'varchar', 'author_id': 'varchar', 'author_handle': 'varchar',
    'author_followers': 'bigint', 'text': 'varchar', 'created_at': 'timestamptz', 'url': 'varchar',
    'language': 'varchar', 'hashtags': 'varchar[]', 'mentions': 'varchar[]', 'likes': 'bigint',
    'shares': 'bigint', 'comments': 'bigint', 'views': 'bigint', 'repost_of': 'varchar',
    'reply_to': 'varchar', 'event_time': 'timestamptz', 'event_time_source': 'varchar',
    'kafka_topic': 'varchar', 'kafka_partition': 'integer', 'kafka_offset': 'bigint',
    'kafka_timestamp': 'timestamptz', 'dt': 'date', 'hour': 'integer'}) }} as lake
where {{ window_filter('event_time', 'dt') }}
