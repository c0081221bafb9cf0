{#-
  Date arithmetic that DuckDB and Spark SQL spell differently. default__ is DuckDB, spark__ is
  Spark SQL (dbt-spark); a model calls the macro and never names an engine.
-#}

{#-
  Whole `part`s from `start` to `end` (end - start), null when either is null. dbt's own
  datediff is not used: on Spark it asserts its arguments are not null, and a left join's
  missing row must give null, not fail the model.
-#}
{% macro date_difference(part, start, end) -%}
    {{ return(adapter.dispatch('date_difference')(part, start, end)) }}
{%- endmacro %}

{% macro default__date_difference(part, start, end) -%}
    date_diff('{{ part }}', {{ start }}, {{ end }})
{%- endmacro %}

{% macro spark__date_difference(part, start, end) -%}
    {%- if part == 'day' -%}
        datediff({{ end }}, {{ start }})
    {%- else -%}
        timestampdiff({{ part | upper }}, {{ start }}, {{ end }})
    {%- endif -%}
{%- endmacro %}


{#-
  A query over `relation` with one row per date from `start` to `stop` (both included) every
  `step_days` days, in a column named `column`; no rows when stop is before start.
-#}
{% macro select_date_series(start, stop, step_days, relation, column) -%}
    {{ return(adapter.dispatch('select_date_series')(start, stop, step_days, relation, column)) }}
{%- endmacro %}

{% macro default__select_date_series(start, stop, step_days, relation, column) -%}
    select
        cast(generate_series as date) as {{ column }}

    from {{ relation }},
        generate_series(
            cast({{ start }} as timestamp), cast({{ stop }} as timestamp), interval {{ step_days }} days
        )
{%- endmacro %}

{% macro spark__select_date_series(start, stop, step_days, relation, column) -%}
    select
        explode(
            case when cast({{ start }} as date) <= cast({{ stop }} as date) then
                sequence(cast({{ start }} as date), cast({{ stop }} as date), interval {{ step_days }} days)
            end
        ) as {{ column }}

    from {{ relation }}
{%- endmacro %}
