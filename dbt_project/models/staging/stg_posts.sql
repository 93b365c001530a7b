-- Deduplicated posts of the window: raw is a faithful Kafka log, so a post_id can
-- appear several times; keep the latest copy (kafka_timestamp, then offset,
-- deterministic tie-break on topic/partition).
{{ config(tags=['window']) }}
with source as (
    select *
    from {{ lake_source('raw_posts', {
        'post_id': 'varchar', 'platform': 'varchar', 'author_id': 'varchar', 'author_handle': 'varchar',
        'author_followers': 'bigint', 'text': 'varchar', 'created_at': 'timestamptz', 'url': 'varchar',
        'language': 'varchar', 'hashtags': 'varchar[]', 'mentions': 'varchar[]', 'likes': 'bigint',
        'shares': 'bigint', 'comments': 'bigint', 'views': 'bigint', 'repost_of': 'varchar',
        'reply_to': 'varchar', 'event_time': 'timestamptz', 'event_time_source': 'varchar',
        'kafka_topic': 'varchar', 'kafka_partition': 'integer', 'kafka_offset': 'bigint',
        'kafka_timestamp': 'timestamptz', 'dt': 'date', 'hour': 'bigint'}) }}
    where {{ window_filter('event_time', 'dt') }}
),

ranked as (
    select
        *,
        count(*) over (partition by post_id) as copies_in_log
    from source
    where post_id is not null
    qualify row_number() over (
        partition by post_id
        order by kafka_timestamp desc nulls last, kafka_offset desc nulls last, kafka_topic, kafka_partition
    ) = 1
)

select
    post_id,
    platform,
    author_id,
    lower(ltrim(author_handle, '@')) as author_handle,
    greatest(coalesce(author_followers, 0), 0) as followers,
    text,
    created_at,
    url,
    language,
    -- ingest stores tags as the message gave them (null when absent); derive them from the text here
    coalesce(hashtags, regexp_extract_all(coalesce(text, ''), '#(\w+)', 1)) as hashtags,
    coalesce(mentions, regexp_extract_all(coalesce(text, ''), '@(\w+)', 1)) as mentions,
    greatest(coalesce(likes, 0), 0) as likes,
    greatest(coalesce(shares, 0), 0) as shares,
    greatest(coalesce(comments, 0), 0) as comments,
    greatest(coalesce(views, 0), 0) as views,
    repost_of,
    reply_to,
    event_time,
    date_trunc('hour', event_time) as window_start,
    event_time_source,
    kafka_topic,
    kafka_partition,
    kafka_offset,
    kafka_timestamp,
    copies_in_log
from ranked
