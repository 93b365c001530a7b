-- Every brand has a row for every window the table knows (calm and "no data" are
-- explicit rows, never missing rows that an alert rule would read as calm).
{{ config(meta={'dagster': {'ref': {'name': 'fct_brand_risk_window'}}}) }}
with windows as (select distinct window_start from {{ ref('fct_brand_risk_window') }}),

brands as (select brand from {{ ref('stg_brands') }})

select
    brands.brand,
    windows.window_start
from brands cross join windows
left join {{ ref('fct_brand_risk_window') }} as f
    on f.brand = brands.brand and f.window_start = windows.window_start
where f.brand is null
