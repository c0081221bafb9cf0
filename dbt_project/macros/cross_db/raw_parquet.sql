{#-
  On Spark, every raw source is an external table over the Parquet files the ingestion's export
  wrote (platform/data_platform/raw/parquet_export.py: <HEADWATER_RAW_PARQUET_DIR>/<table>/),
  registered before each run (on-run-start in dbt_project.yml): dropped and created again, so a
  run always reads the files as they are now and a metastore never points at an old folder.
  Dropping an external table leaves its files. On DuckDB the raw tables are the ingestion's own
  and this renders nothing.
-#}
{% macro register_raw_parquet() -%}
    {{ return(adapter.dispatch('register_raw_parquet')()) }}
{%- endmacro %}

{% macro default__register_raw_parquet() -%}
{%- endmacro %}

{% macro spark__register_raw_parquet() -%}
    {%- if execute -%}
        {%- set folder = env_var('HEADWATER_RAW_PARQUET_DIR', '') | trim -%}
        {%- if not folder.startswith('/') and ':' not in folder -%}
            {{ exceptions.raise_compiler_error(
                "the spark target reads raw tables from HEADWATER_RAW_PARQUET_DIR, which must be "
                ~ "an absolute path or URI (the export's folder); got '" ~ folder ~ "'"
            ) }}
        {%- endif -%}
        {%- set schemas = [] -%}
        {%- for source in graph.sources.values() -%}
            {%- if source.schema not in schemas -%}
                {%- do run_query("create database if not exists " ~ source.schema) -%}
                {%- do schemas.append(source.schema) -%}
            {%- endif -%}
            {%- set table = source.schema ~ "." ~ source.identifier -%}
            {%- do run_query("drop table if exists " ~ table) -%}
            {%- do run_query(
                "create table " ~ table ~ " using parquet location '"
                ~ folder.rstrip('/') ~ "/" ~ source.identifier ~ "'"
            ) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
