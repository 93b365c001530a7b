-- Per-post risk: a weighted blend of negative sentiment, offensiveness and hate
-- (toxicity, 0..1), scaled by exposure = platform weight x reach factor x
-- engagement factor. Unscored posts get null toxicity/risk and is_scored = false.
{%- set w_neg = var('risk_weight_negative') | float %}
{%- set w_off = var('risk_weight_offensive') | float %}
{%- set w_hate = var('risk_weight_hate') | float %}
{%- set w_sum = w_neg + w_off + w_hate %}
with posts as (
    select * from {{ ref('stg_posts') }}
),

scores as (
    select * from {{ ref('stg_post_scores') }}
),

weights as (
    select * from {{ ref('stg_platform_weights') }}
),

joined as (
    select
        posts.*,
        scores.sentiment_label,
        scores.sentiment_negative,
        scores.offensive_score,
        scores.hate_score,
        scores.model_version,
        scores.unscored_reason,
        coalesce(scores.is_scored, false) as is_scored,
        coalesce(weights.weight, 1.0) as platform_weight,
        posts.likes + 2 * posts.shares + posts.comments as engagement
    from posts
    left join scores on scores.post_id = posts.post_id
    left join weights on weights.platform = posts.platform
)

select
    *,
    case
        when is_scored then (
            {{ w_neg }} * sentiment_negative
            + {{ w_off }} * coalesce(offensive_score, 0)
            + {{ w_hate }} * coalesce(hate_score, 0)
        ) / {{ w_sum }}
    end as toxicity,
    1 + log10(1 + followers) as reach_factor,
    1 + log10(1 + engagement) as engagement_factor,
    platform_weight * (1 + log10(1 + followers)) * (1 + log10(1 + engagement)) as exposure
from joined
