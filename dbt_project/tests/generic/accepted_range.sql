{#-
  Fails for every non-null value outside [min_value, max_value] (either bound may be left out).
  Written here because the project uses no dbt packages (no dbt_utils).

      data_tests:
        - accepted_range:
            arguments: {min_value: 0, max_value: 23}
-#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}

select *
from {{ model }}
where {{ column_name }} is not null
    and (
        false
        {%- if min_value is not none %}
        or {{ column_name }} < {{ min_value }}
        {%- endif %}
        {%- if max_value is not none %}
        or {{ column_name }} > {{ max_value }}
        {%- endif %}
    )

{% endtest %}
