-- The window's score rows as the lake holds them (one per post and model version), kept
-- in the warehouse with the file each came from (lake_key): loaded like base_raw_posts
-- (a window build reloads its partitions, a micro-batch appends only the new files).
-- (incremental, appended, tag `window`: dbt_project.yml). The language columns came later:
-- older score files read them as null, and a warehouse built before them gains them.
{{ config(pre_hook="{{ delete_lake_rows('post_scores') }}", on_schema_change='append_new_columns') }}
select *
from {{ lake_rows('post_scores', {
    'post_id': 'varchar', 'platform': 'varchar', 'sentiment_label': 'varchar',
    'sentiment_negative': 'double', 'sentiment_neutral': 'double', 'sentiment_positive': 'double',
    'offensive_score': 'double', 'offensive_label': 'varchar', 'hate_score': 'double',
    'hate_label': 'varchar', 'language': 'varchar', 'unscored_reason': 'varchar',
    'content_hash': 'varchar', 'model_version': 'varchar', 'scored_at': 'timestamptz',
    'language_source': 'varchar', 'detected_language': 'varchar', 'language_confidence': 'double',
    'model': 'varchar', 'dt': 'date', 'hour': 'integer'},
    added=['language_source', 'detected_language', 'language_confidence']) }} as lake
-- a post's scores sit in the hour partition of its raw file (its event time)
where {{ partition_filter('dt', 'hour') }}
