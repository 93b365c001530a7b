-- Rolling baseline of every brand window: mean and standard deviation of risk_sum
-- and mention_count over the previous var('baseline_hours') windows that had data
-- (windows with data_status <> 'ok' never drag the baseline towards calm).
{{ config(materialized='view') }}
{%- set hours = var('baseline_hours') | int %}

select
    brand_window_id,
    brand,
    window_start,
    window_end,
    avg(risk_sum) filter (where data_status = 'ok') over w as baseline_risk_mean,
    stddev_samp(risk_sum) filter (where data_status = 'ok') over w as baseline_risk_std,
    avg(mention_count) filter (where data_status = 'ok') over w as baseline_mentions_mean,
    count(*) filter (where data_status = 'ok') over w as baseline_windows
from {{ ref('fct_brand_risk_window') }}
window w as (
    partition by brand
    order by window_start
    range between interval {{ hours }} hours preceding and interval 1 hour preceding
)
