select
    {{ brand_key('brand') }} as brand,
    nullif(lower(trim(rule)), '') as rule,
    starts_at,
    ends_at,
    comment
from {{ ref('alert_silences') }}
