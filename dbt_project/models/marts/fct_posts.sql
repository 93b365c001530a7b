-- One row per post of the window with its scores and risk factors (brand or not):
-- the window's volume (posts, scored posts) for fct_brand_risk_window, and per-post
-- facts for analysts. Incremental over the partition window: the window is emptied and
-- rebuilt, or, in a micro-batch that merges new lake files, only the posts they name.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='post_id',
    pre_hook="{{ delete_window('window_start', per_post=true) }}",
    tags=['window'],
) }}

select
    post_id,
    platform,
    window_start,
    window_start + interval 1 hour as window_end,
    event_time,
    url,
    author_handle,
    followers,
    engagement,
    language,
    copies_in_log,
    is_scored,
    unscored_reason,
    model_version,
    sentiment_label,
    sentiment_negative,
    offensive_score,
    hate_score,
    toxicity,
    platform_weight,
    exposure,
    toxicity * exposure as post_risk
from {{ ref('int_posts_scored') }}
