-- Brand risk per hourly window: one row for every brand and every window of the
-- partition (zero-mention windows included, so calm and "no data" are explicit).
-- data_status says whether the window can be judged at all: 'no_posts' (no post
-- from any platform: ingest stalled), 'no_scores' (posts but none scored: scoring
-- stalled) or 'ok'. Incremental over the window [min_date, max_date) (macros/lake.sql),
-- always recomputed from the whole window of fct_posts and fct_brand_mentions.
-- unsupported_language_mentions (part of unscored_mentions) and unsupported_languages: the
-- mentions in languages the models do not cover, stated or detected (scoring/language.py),
-- so an operator sees what the risk figures leave out.
-- add_column_if_missing: a warehouse built before a column existed gets it first.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='window_start',
    pre_hook=["{{ add_column_if_missing('brand_name', 'varchar') }}",
              "{{ add_column_if_missing('unsupported_language_mentions', 'bigint') }}",
              "{{ add_column_if_missing('unsupported_languages', 'varchar[]') }}",
              "{{ delete_window('window_start') }}"],
    tags=['window'],
) }}
{%- set toxic = var('toxic_threshold') | float %}

with posts as (
    -- the persisted posts, not the staging view: in a merge that view holds only the new posts
    select
        window_start,
        is_scored
    from {{ ref('fct_posts') }}
    where {{ window_filter('window_start') }}
),

windows as (
    {%- if min_date() is not none and max_date() is not none %}
    select
        unnest(generate_series(
            date_trunc('hour', {{ sql_str(min_date()) }}::timestamptz),
            {{ sql_str(max_date()) }}::timestamptz - interval 1 hour,
            interval 1 hour
        )) as window_start
    {%- else %}
    select unnest(generate_series(min(window_start), max(window_start), interval 1 hour)) as window_start
    from posts
    having count(*) > 0
    {%- endif %}
),

window_volume as (
    select
        window_start,
        count(*) as window_post_count,
        count(*) filter (where is_scored) as window_scored_count
    from posts
    group by window_start
),

brand_window as (
    select
        brand,
        window_start,
        count(*) as mention_count,
        count(*) filter (where is_scored) as scored_mentions,
        count(*) filter (where not is_scored) as unscored_mentions,
        count(*) filter (where starts_with(unscored_reason, 'unsupported_language')) as unsupported_language_mentions,
        list_sort(list_distinct(
            list(nullif(split_part(unscored_reason, ':', 2), ''))
            filter (where starts_with(unscored_reason, 'unsupported_language:'))
        )) as unsupported_languages,
        count(*) filter (where sentiment_label = 'negative') as negative_mentions,
        count(*) filter (where toxicity >= {{ toxic }}) as toxic_mentions,
        avg(toxicity) as avg_toxicity,
        sum(post_risk) / nullif(sum(exposure) filter (where is_scored), 0) as weighted_risk,
        coalesce(sum(post_risk), 0) as risk_sum,
        max(post_risk) as max_post_risk,
        max(toxicity) as max_toxicity,
        sum(followers) as total_reach,
        sum(engagement) as total_engagement,
        count(distinct platform) as platform_count
    from {{ ref('fct_brand_mentions') }}
    where {{ window_filter('window_start') }}
    group by brand, window_start
)

select
    md5(brands.brand || '|' || strftime(windows.window_start, '%Y-%m-%dT%H:%M:%S')) as brand_window_id,
    brands.brand,
    brands.brand_name,
    windows.window_start,
    windows.window_start + interval 1 hour as window_end,
    coalesce(bw.mention_count, 0) as mention_count,
    coalesce(bw.scored_mentions, 0) as scored_mentions,
    coalesce(bw.unscored_mentions, 0) as unscored_mentions,
    coalesce(bw.unsupported_language_mentions, 0) as unsupported_language_mentions,
    coalesce(bw.unsupported_languages, []::varchar[]) as unsupported_languages,
    coalesce(bw.negative_mentions, 0) as negative_mentions,
    coalesce(bw.toxic_mentions, 0) as toxic_mentions,
    bw.avg_toxicity,
    bw.weighted_risk,
    coalesce(bw.risk_sum, 0) as risk_sum,
    bw.max_post_risk,
    bw.max_toxicity,
    coalesce(bw.total_reach, 0) as total_reach,
    coalesce(bw.total_engagement, 0) as total_engagement,
    coalesce(bw.platform_count, 0) as platform_count,
    coalesce(wv.window_post_count, 0) as window_post_count,
    coalesce(wv.window_scored_count, 0) as window_scored_count,
    case
        when coalesce(wv.window_post_count, 0) = 0 then 'no_posts'
        when coalesce(wv.window_scored_count, 0) = 0 then 'no_scores'
        else 'ok'
    end as data_status
from windows
cross join {{ ref('stg_brands') }} as brands
left join window_volume as wv on wv.window_start = windows.window_start
left join brand_window as bw on bw.brand = brands.brand and bw.window_start = windows.window_start
