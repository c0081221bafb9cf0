{#-
  How a daily model (macros/partition_window.sql) replaces its window, per engine:

      {{ config(
          materialized='incremental',
          incremental_strategy=partition_window_strategy(),
          partition_by=partition_window_partition_by('transaction_date'),
          pre_hook="{{ delete_partition_window('transaction_date') }}",
          ...
      ) }}

  DuckDB (default__): `append` after the pre_hook deleted the window's rows; no partitioning.
  Spark (spark__): Parquet tables have no DELETE, so the table is partitioned by the partition
  column and `insert_overwrite` replaces exactly the partitions the run wrote (dbt-spark turns
  on dynamic partition overwrite); the pre_hook renders nothing. One difference: a day of the
  window whose source rows are all gone keeps its old rows on Spark (nothing overwrites it).
-#}
{% macro partition_window_strategy() -%}
    {{ return(adapter.dispatch('partition_window_strategy')()) }}
{%- endmacro %}

{% macro default__partition_window_strategy() -%}
    {{ return('append') }}
{%- endmacro %}

{% macro spark__partition_window_strategy() -%}
    {{ return('insert_overwrite') }}
{%- endmacro %}


{% macro partition_window_partition_by(column) -%}
    {{ return(adapter.dispatch('partition_window_partition_by')(column)) }}
{%- endmacro %}

{% macro default__partition_window_partition_by(column) -%}
    {{ return(none) }}
{%- endmacro %}

{% macro spark__partition_window_partition_by(column) -%}
    {{ return([column]) }}
{%- endmacro %}
