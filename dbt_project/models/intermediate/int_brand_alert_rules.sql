-- The rule parameters in force for every brand: a brand-specific row of the
-- alert_rules seed overrides the default row (empty brand).
select
    brands.brand,
    rules.rule,
    rules.enabled,
    rules.severity,
    rules.threshold,
    rules.critical_threshold,
    rules.k_sigma,
    rules.min_volume,
    rules.min_baseline_windows,
    rules.min_reach,
    rules.repeat_interval_minutes,
    rules.description
from {{ ref('stg_brands') }} as brands
inner join {{ ref('stg_alert_rules') }} as rules
    on rules.brand is null or rules.brand = brands.brand
qualify row_number() over (partition by brands.brand, rules.rule order by rules.brand is null) = 1
