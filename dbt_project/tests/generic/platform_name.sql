{% test platform_name(model, column_name) %}
-- the platform names ingest admits (reputation_pipeline/resources.py PLATFORM_NAME); any
-- other value could not have come from a social.posts.<platform> topic or an import
select {{ column_name }}
from {{ model }}
where not regexp_full_match({{ column_name }}, '[a-z0-9_]{1,32}')
{% endtest %}
