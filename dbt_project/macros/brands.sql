{#- A brand's two names. The brands CSV is written by an operator: brand_name keeps the
    name as written (for display: marts, alert messages, the UI); brand_key is what
    identifies the brand (joins, rule overrides, silences, alert ids and incidents, the
    Kafka message key), so changing only the case or spacing of a name in the CSV keeps
    every alert identity. reputation_pipeline/aggregation/brands.py refuses two rows with
    one key before dbt runs. -#}

{% macro brand_name(expr) -%}
{#- runs of whitespace as one space, none at the ends -#}
trim(regexp_replace({{ expr }}, '\s+', ' ', 'g'))
{%- endmacro %}

{% macro brand_key(expr) -%}
lower({{ brand_name(expr) }})
{%- endmacro %}
