{#-
  Model-level test: a model's key is unique and its required columns hold no null, checked in one
  query. It fails with one row per fault:

      fault      column_names             failing
      null       customer_id              2          (rows with a null customer_id)
      duplicate  customer_id, as_of_date  1          (key values found on more than one row)

  and its failure count is the sum of `failing`.

      data_tests:
        - unique_and_not_null:
            name: unique_and_not_null_fct_transactions
            arguments:
              unique_key: [transaction_id]
              not_null: [transaction_id, customer_id, transaction_date]

  As dbt's `unique`, a key with a null in any of its columns is not compared (`not_null` lists
  the key's columns when they are required).

  Why not dbt's column-level `not_null` and `unique`: each of those is its own node and its own
  Dagster check, and every node costs dbt's per-node work and three Dagster events in every run
  that builds the model (a new day ran 75 of them, then 46 with one not_null test per model).
  In a windowed run it reads the rows the run wrote, and every row of another day that holds
  one of their keys, so that a key is unique across the whole table (macros/tested_rows.sql).
-#}
{% test unique_and_not_null(model, unique_key, not_null) %}
{{ config(fail_calc='coalesce(sum(failing), 0)') }}

with null_counts as (
    select
        {%- for column in not_null %}
        sum(case when {{ column }} is null then 1 else 0 end) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ model }}
),

duplicated_keys as (
    select count(*) as duplicated
    from (
        select {{ unique_key | join(', ') }}
        from {{ model }}
        where {% for column in unique_key %}{{ column }} is not null{{ ' and ' if not loop.last }}{% endfor %}
        group by {{ unique_key | join(', ') }}
        having count(*) > 1
    ) as duplicates
)

{% for column in not_null -%}
select 'null' as fault, '{{ column }}' as column_names, {{ column }} as failing
from null_counts
where {{ column }} > 0
union all
{% endfor -%}
select 'duplicate' as fault, '{{ unique_key | join(", ") }}' as column_names, duplicated as failing
from duplicated_keys
where duplicated > 0

{% endtest %}
