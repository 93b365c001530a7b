-- No mention may contain one of its brand's exclusion terms (e.g. "acme acres").
{{ config(meta={'dagster': {'ref': {'name': 'fct_brand_mentions'}}}) }}
select
    m.mention_id,
    m.brand,
    m.text
from {{ ref('fct_brand_mentions') }} as m
inner join {{ ref('stg_brands') }} as b on b.brand = m.brand
where len(list_filter(b.exclusions, lambda x: contains({{ normalize_text('m.text') }}, ' ' || x || ' '))) > 0
