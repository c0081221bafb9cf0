{#-
  Model-level test: the model's required columns, all checked in one scan. It fails with one row
  per listed column that holds a null (column_name, null_rows); its failure count is the number of
  nulls found.

      data_tests:
        - not_null_columns:
            name: not_null_fct_transactions
            arguments:
              columns: [transaction_id, customer_id, transaction_date]

  Why not dbt's column-level `not_null`: each of those is its own node and its own Dagster check,
  and a model's five of them cost five queries, five nodes of dbt's per-node work and fifteen
  Dagster events in every run that builds it (a new day ran 44 of them). This is one of each.
  In a windowed run it reads the rows the run wrote, as every generic test does
  (macros/tested_rows.sql).
-#}
{% test not_null_columns(model, columns) %}
{{ config(fail_calc='coalesce(sum(null_rows), 0)') }}

with null_counts as (
    select
        {%- for column in columns %}
        sum(case when {{ column }} is null then 1 else 0 end) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ model }}
)

{% for column in columns -%}
select '{{ column }}' as column_name, {{ column }} as null_rows
from null_counts
where {{ column }} > 0
{% if not loop.last %}union all
{% endif %}
{%- endfor %}

{% endtest %}
