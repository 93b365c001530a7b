-- Which posts mention which brand, and why. Whole-word, case-insensitive matching
-- of the brand's keywords in the text, its handles in the mentions or the text, its
-- hashtags in the hashtags or the text; a post containing an exclusion term is not
-- a mention of that brand.
with posts as (
    select
        post_id,
        {{ normalize_text('text') }} as norm_text,
        list_transform(mentions, lambda m: trim(regexp_replace(lower(ltrim(m, '@')), '[^\pL\pN]+', ' ', 'g')))
            as norm_mentions,
        list_transform(hashtags, lambda h: trim(regexp_replace(lower(ltrim(h, '#')), '[^\pL\pN]+', ' ', 'g')))
            as norm_hashtags
    from {{ ref('stg_posts') }}
),

brands as (
    select * from {{ ref('stg_brands') }}
),

matched as (
    select
        posts.post_id,
        brands.brand,
        brands.brand_name,
        list_filter(brands.keywords, lambda k: contains(posts.norm_text, ' ' || k || ' ')) as matched_keywords,
        list_filter(
            brands.handles,
            lambda h: list_contains(posts.norm_mentions, h) or contains(posts.norm_text, ' ' || h || ' ')
        ) as matched_handles,
        list_filter(
            brands.hashtags,
            lambda t: list_contains(posts.norm_hashtags, t) or contains(posts.norm_text, ' ' || t || ' ')
        ) as matched_hashtags,
        list_filter(brands.exclusions, lambda x: contains(posts.norm_text, ' ' || x || ' ')) as matched_exclusions
    from posts
    cross join brands
)

select
    md5(post_id || '|' || brand) as mention_id,
    post_id,
    brand,
    brand_name,
    matched_keywords,
    matched_handles,
    matched_hashtags
from matched
where
    len(matched_exclusions) = 0
    and len(matched_keywords) + len(matched_handles) + len(matched_hashtags) > 0
