select
    lower(trim(rule)) as rule,
    nullif({{ brand_key('brand') }}, '') as brand,
    coalesce(enabled, true) as enabled,
    lower(trim(severity)) as severity,
    threshold,
    critical_threshold,
    k_sigma,
    coalesce(min_volume, 0) as min_volume,
    coalesce(min_baseline_windows, 1) as min_baseline_windows,
    coalesce(min_reach, 0) as min_reach,
    repeat_interval_minutes,
    description
from {{ ref('alert_rules') }}
