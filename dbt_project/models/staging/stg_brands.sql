-- Brands to monitor, from the `brands` seed or from the CSV named in
-- REPUTATION_BRANDS_CSV (columns brand,keywords,handles,hashtags,exclusions; lists
-- separated by '|'). `brand` is the brand's key, `brand_name` its name as written
-- (macros/brands.sql). Lists are normalized like the post text (lower-case words).
-- depends_on: {{ ref('brands') }}
{%- set brands_csv = env_var('REPUTATION_BRANDS_CSV', '') %}
with source as (
    select
        brand,
        keywords,
        handles,
        hashtags,
        exclusions
    {%- if brands_csv %}
    from read_csv({{ sql_str(brands_csv) }}, header = true, all_varchar = true)
    {%- else %}
    from {{ ref('brands') }}
    {%- endif %}
)

select
    {{ brand_key('brand') }} as brand,
    {{ brand_name('brand') }} as brand_name,
    {{ split_list('keywords') }} as keywords,
    {{ split_list('handles', '@') }} as handles,
    {{ split_list('hashtags', '#') }} as hashtags,
    {{ split_list('exclusions') }} as exclusions
from source
where nullif(trim(brand), '') is not null
