{#-
  Model-level test: fails for every combination of `combination_of_columns` that occurs more than
  once (the grain check for a model whose primary key spans several columns).

      data_tests:
        - unique_combination_of_columns:
            arguments:
              combination_of_columns: [merchant_id, activity_date]
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(',\n    ') }},
    count(*) as n_rows
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
