-- One row per (post, brand) mention with the post's risk: the per-post facts the
-- alert explanations quote (links, platform, author, scores). Incremental over the
-- partition window: the window is emptied and rebuilt, or, in a micro-batch that merges
-- new lake files, only the mentions of the posts they name (a post whose latest copy no
-- longer mentions a brand loses that row).
-- add_column_if_missing: a warehouse built before brand_name existed gets the column first.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='mention_id',
    pre_hook=["{{ add_column_if_missing('brand_name', 'varchar') }}", "{{ delete_window('window_start', per_post=true) }}"],
    tags=['window'],
) }}

select
    mentions.mention_id,
    mentions.post_id,
    mentions.brand,
    mentions.brand_name,
    posts.platform,
    posts.window_start,
    posts.window_start + interval 1 hour as window_end,
    posts.event_time,
    posts.url,
    posts.author_handle,
    posts.followers,
    posts.engagement,
    posts.likes,
    posts.shares,
    posts.comments,
    left(posts.text, 500) as text,
    posts.language,
    mentions.matched_keywords,
    mentions.matched_handles,
    mentions.matched_hashtags,
    posts.is_scored,
    posts.unscored_reason,
    posts.model_version,
    posts.sentiment_label,
    posts.sentiment_negative,
    posts.offensive_score,
    posts.hate_score,
    posts.toxicity,
    posts.platform_weight,
    posts.exposure,
    posts.toxicity * posts.exposure as post_risk
from {{ ref('int_brand_mentions') }} as mentions
inner join {{ ref('int_posts_scored') }} as posts on posts.post_id = mentions.post_id
