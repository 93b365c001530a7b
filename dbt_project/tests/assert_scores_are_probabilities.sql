-- Scores from the scoring stage must be probabilities and consistent with
-- unscored_reason: a score outside [0, 1], sentiment probabilities that do not sum
-- to ~1, or a scored row without scores means the contract is broken upstream.
select
    post_id,
    sentiment_negative,
    sentiment_neutral,
    sentiment_positive,
    offensive_score,
    hate_score
from {{ ref('stg_post_scores') }}
where
    (unscored_reason is null and (sentiment_negative is null or offensive_score is null or hate_score is null))
    or sentiment_negative not between 0 and 1
    or sentiment_neutral not between 0 and 1
    or sentiment_positive not between 0 and 1
    or offensive_score not between 0 and 1
    or hate_score not between 0 and 1
    or abs(sentiment_negative + sentiment_neutral + sentiment_positive - 1) > 0.01
