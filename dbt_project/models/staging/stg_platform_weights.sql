select
    lower(trim(platform)) as platform,
    cast(weight as double) as weight
from {{ ref('platform_weights') }}
