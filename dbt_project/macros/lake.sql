{#- Helpers for reading the lake and for the partition window.
    Values that reach SQL text here are configuration (vars, env), never message
    content; they are still quoted with sql_str(). -#}

{% macro sql_str(value) -%}
'{{ (value | string).replace("'", "''") }}'
{%- endmacro %}

{% macro generate_schema_name(custom_schema_name, node) -%}
{#- plain schema names (staging, intermediate, marts, seeds) instead of <target>_<custom> -#}
{{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}

{% macro lake_root() -%}
{{ var('lake_root', env_var('REPUTATION_LAKE', '../lake')).rstrip('/') }}
{%- endmacro %}

{% macro lake_glob(table) -%}
{#- must match external_location in models/staging/_sources.yml -#}
{%- set globs = {
    'raw_posts': '/raw/posts/platform=*/dt=*/hour=*/*.parquet',
    'post_scores': '/scores/model=*/dt=*/hour=*/*.parquet',
} -%}
{{ lake_root() ~ globs[table] }}
{%- endmacro %}

{% macro lake_has_files(table) -%}
{%- set result = run_query('select count(*) from glob(' ~ sql_str(lake_glob(table)) ~ ')') -%}
{{ return(result.columns[0].values()[0] > 0) }}
{%- endmacro %}

{% macro lake_source(table, empty_columns) -%}
{#- The source relation, or an empty relation with the contract's columns while the
    lake holds no file for it yet (read_parquet fails on an empty glob). -#}
{%- if execute and not lake_has_files(table) -%}
(select {% for name, type in empty_columns.items() %}null::{{ type }} as {{ name }}{{ ", " if not loop.last }}{% endfor %} where false)
{%- else -%}
{{ source('lake', table) }}
{%- endif -%}
{%- endmacro %}

{% macro min_date() -%}{{ var('min_date', none) }}{%- endmacro %}
{% macro max_date() -%}{{ var('max_date', none) }}{%- endmacro %}

{% macro window_filter(ts_column, dt_column=none) -%}
{#- [min_date, max_date) on the event time; the dt predicate lets DuckDB prune
    hive partitions (folders) before reading them. True when the vars are unset. -#}
{%- set lo = var('min_date', none) -%}
{%- set hi = var('max_date', none) -%}
{%- if lo is not none and hi is not none -%}
{{ ts_column }} >= {{ sql_str(lo) }}::timestamptz and {{ ts_column }} < {{ sql_str(hi) }}::timestamptz
{%- if dt_column %} and {{ dt_column }} between ({{ sql_str(lo) }}::timestamptz)::date and ({{ sql_str(hi) }}::timestamptz)::date{% endif %}
{%- else -%}
true
{%- endif -%}
{%- endmacro %}

{% macro dt_filter(dt_column) -%}
{%- set lo = var('min_date', none) -%}
{%- set hi = var('max_date', none) -%}
{%- if lo is not none and hi is not none -%}
{{ dt_column }} between ({{ sql_str(lo) }}::timestamptz)::date and ({{ sql_str(hi) }}::timestamptz)::date
{%- else -%}
true
{%- endif -%}
{%- endmacro %}

{% macro delete_window(ts_column='window_start') -%}
{#- pre_hook of the windowed incremental models: empty the partition's window first,
    so a re-run replaces it exactly (even when it now has fewer rows). -#}
{%- if is_incremental() and var('min_date', none) is not none and var('max_date', none) is not none -%}
delete from {{ this }} where {{ window_filter(ts_column) }}
{%- else -%}
select 1
{%- endif -%}
{%- endmacro %}

{% macro normalize_text(expr) -%}
{#- lower-case words separated by single spaces, padded: whole-word matching with contains() -#}
(' ' || trim(regexp_replace(lower(coalesce({{ expr }}, '')), '[^\pL\pN]+', ' ', 'g')) || ' ')
{%- endmacro %}

{% macro split_list(expr, strip_chars='') -%}
{#- 'a|b | c' -> ['a','b','c'] normalized like normalize_text, empties dropped -#}
list_filter(
  list_transform(string_split(coalesce({{ expr }}, ''), '|'),
    lambda x: trim(regexp_replace(lower(ltrim(trim(x), '{{ strip_chars }}')), '[^\pL\pN]+', ' ', 'g'))),
  lambda x: x <> '')
{%- endmacro %}
