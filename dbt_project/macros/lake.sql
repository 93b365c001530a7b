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

{% macro window_bound(name) -%}
{#- A bound of the partition window (name: 'min_date' or 'max_date', ISO timestamps).
    The var wins when given (`dbt build --vars '{min_date: ..., max_date: ...}'` by hand);
    else REPUTATION_DBT_MIN_DATE / REPUTATION_DBT_MAX_DATE, which the Dagster asset sets
    per run. The environment is read only while executing, never while parsing: a new
    window every micro-batch then keeps dbt's partial parsing valid, where a changed
    --vars forces a full re-parse of the project (seconds per run). -#}
{%- set value = var(name, none) -%}
{%- if value is none and execute -%}
{%- set value = env_var('REPUTATION_DBT_' ~ (name | upper), '') or none -%}
{%- endif -%}
{{ return(value) }}
{%- endmacro %}

{% macro min_date() -%}{{ return(window_bound('min_date')) }}{%- endmacro %}
{% macro max_date() -%}{{ return(window_bound('max_date')) }}{%- endmacro %}

{% macro window_filter(ts_column, dt_column=none) -%}
{#- [min_date, max_date) on the event time; with dt_column, the partition_filter on the
    dt/hour partition columns lets DuckDB prune hive partitions (folders) before reading
    them. True when no window is set. -#}
{%- set lo = min_date() -%}
{%- set hi = max_date() -%}
{%- if lo is not none and hi is not none -%}
{{ ts_column }} >= {{ sql_str(lo) }}::timestamptz and {{ ts_column }} < {{ sql_str(hi) }}::timestamptz
{%- if dt_column %} and {{ partition_filter(dt_column, 'hour') }}{% endif %}
{%- else -%}
true
{%- endif -%}
{%- endmacro %}

{% macro partition_filter(dt_column='dt', hour_column='hour') -%}
{#- The lake's hive partitions (event-time date and hour, UTC: the session's TimeZone) that
    overlap [min_date, max_date): DuckDB prunes the other folders before opening a file, so a
    micro-batch late in the day reads its hour, not the whole day. True when no window is set. -#}
{%- set lo = min_date() -%}
{%- set hi = max_date() -%}
{%- if lo is not none and hi is not none -%}
{{ dt_column }} between ({{ sql_str(lo) }}::timestamptz)::date and ({{ sql_str(hi) }}::timestamptz)::date
and {{ dt_column }} + to_hours(cast({{ hour_column }} as integer)) >= date_trunc('hour', {{ sql_str(lo) }}::timestamptz)::timestamp
and {{ dt_column }} + to_hours(cast({{ hour_column }} as integer)) < ({{ sql_str(hi) }}::timestamptz)::timestamp
{%- else -%}
true
{%- endif -%}
{%- endmacro %}

{% macro delete_window(ts_column='window_start') -%}
{#- pre_hook of the windowed incremental models: empty the partition's window first,
    so a re-run replaces it exactly (even when it now has fewer rows). -#}
{%- if is_incremental() and min_date() is not none and max_date() is not none -%}
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
