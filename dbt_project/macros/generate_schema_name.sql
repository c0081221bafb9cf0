{#-
  A model's schema is its top-level folder under models/ (staging, intermediate, marts, ...), so
  folder = DuckDB schema = Dagster group. An explicit `schema` config still wins. Sources are not
  affected: they declare `schema: raw` themselves.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is not none -%}
        {{ custom_schema_name | trim }}
    {%- elif node.resource_type in ('model', 'seed', 'snapshot') and node.fqn | length > 2 -%}
        {{ node.fqn[1] }}
    {%- else -%}
        {{ target.schema }}
    {%- endif -%}
{%- endmacro %}
