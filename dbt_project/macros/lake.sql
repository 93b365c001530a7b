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

{% macro delete_window(ts_column='window_start', per_post=false) -%}
{#- pre_hook of the windowed incremental models: empty the partition's window first,
    so a re-run replaces it exactly (even when it now has fewer rows). per_post: in a
    merge, only the rows of the posts the new files name (merged_post_ids). -#}
{%- if is_incremental() and min_date() is not none and max_date() is not none -%}
delete from {{ this }} where {{ window_filter(ts_column) }}
{%- if per_post and merging() %} and post_id in {{ merged_post_ids() }}{% endif %}
{%- else -%}
select 1
{%- endif -%}
{%- endmacro %}

{% macro add_column_if_missing(name, data_type) -%}
{#- pre_hook, ahead of delete_window, of an incremental model that gained a column: the table a
    warehouse built before has it added, so the inserts carry it (dbt's default leaves a new
    column out; its on_schema_change alters the table after delete_window in the same
    transaction, which DuckDB refuses at commit). A no-op once the column is there. -#}
{%- if is_incremental() -%}
alter table {{ this }} add column if not exists {{ adapter.quote(name) }} {{ data_type }}
{%- else -%}
select 1
{%- endif -%}
{%- endmacro %}

{% macro merge_files(table) -%}
{#- A micro-batch that merges only new lake files (reputation_pipeline/aggregation/merge.py)
    names them in REPUTATION_DBT_MERGE_FILES: this source's new file keys, relative to the
    lake root. none = a full build of the window. Read at execution only, like the window. -#}
{%- if not execute or min_date() is none or max_date() is none -%}
{{ return(none) }}
{%- endif -%}
{%- set names = env_var('REPUTATION_DBT_MERGE_FILES', '') -%}
{%- if not names -%}
{{ return(none) }}
{%- endif -%}
{{ return(fromjson(names).get(table, [])) }}
{%- endmacro %}

{% macro merging() -%}
{{ return(merge_files('raw_posts') is not none) }}
{%- endmacro %}

{% macro sql_list(values) -%}
{#- [v1, v2, ...] as quoted VARCHAR literals -#}
[{% for v in values %}{{ sql_str(v) }}{{ ', ' if not loop.last }}{% endfor %}]::varchar[]
{%- endmacro %}

{% macro lake_paths(keys) -%}
{#- lake keys -> the quoted paths read_parquet([...]) takes -#}
[{% for key in keys %}{{ sql_str(lake_root() ~ '/' ~ key) }}{{ ', ' if not loop.last }}{% endfor %}]
{%- endmacro %}

{% macro merged_post_ids() -%}
{#- The post ids the new files name (a copy of the post or a score): the rows a merge
    recomputes, from every copy and score of those posts in the window. -#}
(select post_id from (
    select null::varchar as post_id where false
    {%- for table in ['raw_posts', 'post_scores'] %}
    {%- set keys = merge_files(table) or [] %}
    {%- if keys %}
    union all select post_id from read_parquet({{ lake_paths(keys) }}, union_by_name = true)
    {%- endif %}
    {%- endfor %}
) where post_id is not null)
{%- endmacro %}

{% macro lake_rows(table, columns, added=[]) -%}
{#- A source's rows, cast to the contract's columns, with lake_key (the file's key under
    the lake root): the files of the window's partitions (every file without a window), or
    in a merge the new files only. An empty relation when none. `added`: contract columns
    that files written before them lack; they read as null even when no file read has
    them yet (union_by_name only fills a column that some file has). -#}
{%- set keys = merge_files(table) -%}
{%- set cast_columns -%}
{% for name, type in columns.items() %}cast({{ name }} as {{ type }}) as {{ name }}, {% endfor -%}
substr(filename, {{ (lake_root() | length) + 2 }}) as lake_key
{%- endset -%}
{%- set fill -%}
{%- if added %} union all by name (select {% for name in added %}null::{{ columns[name] }} as {{ name }}{{ ', ' if not loop.last }}{% endfor %} where false){% endif -%}
{%- endset -%}
{%- if keys -%}
(select {{ cast_columns }} from (select * from read_parquet({{ lake_paths(keys) }}, hive_partitioning = true, union_by_name = true, filename = true){{ fill }}))
{%- elif keys is not none or (execute and not lake_has_files(table)) -%}
{#- a merge with no new file of this source, or a lake without any yet -#}
(select {% for name, type in columns.items() %}null::{{ type }} as {{ name }}, {% endfor %}null::varchar as lake_key where false)
{%- else -%}
{#- the partition filter on the source's own columns: DuckDB prunes folders with it, not through the casts -#}
(select {{ cast_columns }} from (select * from {{ source('lake', table) }} where {{ partition_filter('dt', 'hour') }}
{%- if table == 'raw_posts' and execute and env_var('REPUTATION_DBT_RAW_FILES_LISTED', '') %}
  {#- a window build from Dagster: the committed raw files it listed (lake/layout.py, the read protocol) #}
  and substr(filename, {{ (lake_root() | length) + 2 }}) in (select path from meta.window_raw_files)
{%- endif %}{{ fill }}))
{%- endif -%}
{%- endmacro %}

{% macro delete_lake_rows(table) -%}
{#- pre_hook of the base models (the window's lake rows kept in the warehouse): a merge
    first drops the rows of the files it (re-)reads, so merging a file twice (a retry)
    keeps one copy; a window build empties the window's partitions; a build without a
    window, everything. -#}
{%- if not is_incremental() -%}
select 1
{%- elif merge_files(table) is not none -%}
{%- set keys = merge_files(table) -%}
delete from {{ this }} where {% if keys %}lake_key in (select unnest({{ sql_list(keys) }})){% else %}false{% endif %}
{%- elif min_date() is not none and max_date() is not none -%}
delete from {{ this }} where {{ partition_filter('dt', 'hour') }}
{%- else -%}
delete from {{ this }}
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

{% macro persist_docs(relation, model, for_relation=true, for_columns=true) -%}
{#- dbt's persist_docs, less its statements in a merge for the incremental tables: their
    comments survive the inserts (a rebuild writes them), so a micro-batch need not write
    them again. -#}
{%- if merging() and model.config.materialized == 'incremental' -%}
{{ return('') }}
{%- endif -%}
{{ return(adapter.dispatch('persist_docs', 'dbt')(relation, model, for_relation, for_columns)) }}
{%- endmacro %}
