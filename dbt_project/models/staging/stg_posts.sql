-- Deduplicated posts of the window: raw is a faithful Kafka log, so a post_id can
-- appear several times; keep the latest copy (kafka_timestamp, then offset,
-- deterministic tie-break on topic/partition). Read from base_raw_posts (the window's
-- raw rows, kept in the warehouse); in a micro-batch that merges new lake files, only
-- the posts those files name (macros/lake.sql merged_post_ids).
{{ config(tags=['window']) }}
with source as (
    select *
    from {{ ref('base_raw_posts') }}
    -- in a merge, every copy of the posts the new files name
    where
        {{ window_filter('event_time', 'dt') }}{% if merging() %} and post_id in {{ merged_post_ids() }}{% endif %}
),

ranked as (
    select
        *,
        count(*) over (partition by post_id) as copies_in_log
    from source
    where post_id is not null
    qualify row_number() over (
        partition by post_id
        order by kafka_timestamp desc nulls last, kafka_offset desc nulls last, kafka_topic asc, kafka_partition asc
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
