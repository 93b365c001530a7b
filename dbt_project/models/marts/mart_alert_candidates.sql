-- The alert rules, in SQL a data engineer can read and edit: one row per brand,
-- window and enabled rule, with is_firing true/false, or null when the rule could
-- not be judged (the window had no data: that is the no_data rule's business and
-- must never read as calm). Parameters come from the alert_rules seed.
-- brand_alerts (Dagster) turns these rows into notifications: dedup, cooldown,
-- silences, resolved notices.
{{ config(materialized='view') }}

with windows as (
    select
        risk.*,
        base.baseline_risk_mean,
        base.baseline_risk_std,
        base.baseline_mentions_mean,
        base.baseline_windows
    from {{ ref('fct_brand_risk_window') }} as risk
    left join {{ ref('mart_brand_baselines') }} as base on base.brand_window_id = risk.brand_window_id
),

rules as (
    select * from {{ ref('int_brand_alert_rules') }}
    where enabled
),

-- Each rule says whether the window meets it (is_met); the final select turns that into
-- is_firing, null for every rule but no_data when the window had no data to judge.

-- risk_threshold: the reach-weighted risk of the window's mentions is high
risk_threshold as (
    select
        w.brand,
        w.window_start,
        r.rule,
        w.mention_count >= r.min_volume and coalesce(w.weighted_risk, 0) >= r.threshold as is_met,
        case when w.weighted_risk >= r.critical_threshold then 'critical' else r.severity end as severity,
        'weighted_risk' as metric,
        w.weighted_risk as metric_value,
        r.threshold
    from windows as w inner join rules as r on r.brand = w.brand and r.rule = 'risk_threshold'
),

-- risk_spike: total risk above the rolling baseline mean + k * sigma, with a volume floor
risk_spike as (
    select
        w.brand,
        w.window_start,
        r.rule,
        (
            w.mention_count >= r.min_volume
            and w.baseline_windows >= r.min_baseline_windows
            and w.risk_sum > w.baseline_risk_mean + r.k_sigma * coalesce(w.baseline_risk_std, 0)
            and w.risk_sum > w.baseline_risk_mean
        ) as is_met,
        case
            when (w.risk_sum - w.baseline_risk_mean) / nullif(w.baseline_risk_std, 0) >= r.critical_threshold
                then 'critical'
            else r.severity
        end as severity,
        'risk_sum' as metric,
        w.risk_sum as metric_value,
        w.baseline_risk_mean + r.k_sigma * coalesce(w.baseline_risk_std, 0) as threshold
    from windows as w inner join rules as r on r.brand = w.brand and r.rule = 'risk_spike'
),

-- toxic_post: a single toxic post from an author with a large reach
toxic_post_max as (
    select
        m.brand,
        m.window_start,
        max(m.toxicity) as max_toxicity
    from {{ ref('fct_brand_mentions') }} as m
    inner join rules as r on r.brand = m.brand and r.rule = 'toxic_post'
    where m.followers >= r.min_reach and m.is_scored
    group by m.brand, m.window_start
),

toxic_post as (
    select
        w.brand,
        w.window_start,
        r.rule,
        coalesce(t.max_toxicity, 0) >= r.threshold as is_met,
        r.severity,
        'max_toxicity_high_reach' as metric,
        t.max_toxicity as metric_value,
        r.threshold
    from windows as w
    inner join rules as r on r.brand = w.brand and r.rule = 'toxic_post'
    left join toxic_post_max as t on t.brand = w.brand and t.window_start = w.window_start
),

-- no_data: nothing to judge (ingest or scoring stalled)
no_data as (
    select
        w.brand,
        w.window_start,
        r.rule,
        w.data_status <> 'ok' as is_met,
        r.severity,
        'window_post_count' as metric,
        cast(w.window_post_count as double) as metric_value,
        cast(null as double) as threshold
    from windows as w inner join rules as r on r.brand = w.brand and r.rule = 'no_data'
),

candidates as (
    select * from risk_threshold
    union all
    select * from risk_spike
    union all
    select * from toxic_post
    union all
    select * from no_data
)

select
    md5(c.brand || '|' || c.rule || '|' || strftime(c.window_start, '%Y-%m-%dT%H:%M:%S')) as candidate_id,
    c.brand,
    brands.brand_name,
    c.rule,
    c.window_start,
    w.window_end,
    case when c.rule = 'no_data' or w.data_status = 'ok' then c.is_met end as is_firing,
    case when c.is_met and (c.rule = 'no_data' or w.data_status = 'ok') then c.severity end as severity,
    c.metric,
    c.metric_value,
    c.threshold,
    w.data_status,
    w.mention_count,
    w.scored_mentions,
    w.negative_mentions,
    w.toxic_mentions,
    w.weighted_risk,
    w.risk_sum,
    w.max_toxicity,
    w.total_reach,
    w.window_post_count,
    w.window_scored_count,
    w.baseline_risk_mean,
    w.baseline_risk_std,
    w.baseline_mentions_mean,
    w.baseline_windows,
    r.repeat_interval_minutes,
    r.description as rule_description
from candidates as c
inner join windows as w on w.brand = c.brand and w.window_start = c.window_start
inner join rules as r on r.brand = c.brand and r.rule = c.rule
-- the name the brands CSV writes today, also for a window built before it was renamed
inner join {{ ref('stg_brands') }} as brands on brands.brand = c.brand
