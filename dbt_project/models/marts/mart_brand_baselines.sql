-- Rolling baseline of every brand window: mean and standard deviation of risk_sum
-- and mention_count over the previous var('baseline_hours') windows that had data
-- (windows with data_status <> 'ok' never drag the baseline towards calm, and windows
-- under var('baseline_min_mentions') mentions are too thin to be a baseline).
{{ config(materialized='view') }}
{%- set hours = var('baseline_hours') | int %}
{%- set min_mentions = var('baseline_min_mentions') | int %}

select
    brand_window_id,
    brand,
    window_start,
    window_end,
    avg(risk_sum) filter (where data_status = 'ok' and mention_count >= {{ min_mentions }})
        over w as baseline_risk_mean,
    stddev_samp(risk_sum) filter (where data_status = 'ok' and mention_count >= {{ min_mentions }})
        over w as baseline_risk_std,
    avg(mention_count) filter (where data_status = 'ok' and mention_count >= {{ min_mentions }})
        over w as baseline_mentions_mean,
    count(*) filter (where data_status = 'ok' and mention_count >= {{ min_mentions }}) over w as baseline_windows
from {{ ref('fct_brand_risk_window') }}
window w as (
    partition by brand
    order by window_start
    range between interval {{ hours }} hours preceding and interval 1 hour preceding
)
