-- One score row per post: the latest by scored_at over the model versions present
-- (or only var('model_version') when it is set). Unscored rows (unscored_reason set)
-- keep null scores. Read from base_post_scores; in a merge, only the posts the new lake
-- files name.
{{ config(tags=['window']) }}
with source as (
    select *
    from {{ ref('base_post_scores') }}
    -- a post's scores sit in the hour partition of its raw file (its event time)
    where
        {{ partition_filter('dt', 'hour') }}
        {%- if merging() %}
        and post_id in {{ merged_post_ids() }}
        {%- endif %}
        {%- if var('model_version', none) is not none %}
        and model_version = {{ sql_str(var('model_version')) }}
        {%- endif %}
)

select
    post_id,
    platform,
    sentiment_label,
    sentiment_negative,
    sentiment_neutral,
    sentiment_positive,
    offensive_score,
    offensive_label,
    hate_score,
    hate_label,
    -- the post's own tag; where it has none, the detector's language and whether it was
    -- confident enough to judge the post (language_source: stated | detected | assumed)
    language as stated_language,
    detected_language,
    language_confidence,
    language_source,
    unscored_reason,
    unscored_reason is null and sentiment_negative is not null as is_scored,
    content_hash,
    model_version,
    scored_at
from source
where post_id is not null
qualify row_number() over (partition by post_id order by scored_at desc nulls last, model_version desc) = 1
