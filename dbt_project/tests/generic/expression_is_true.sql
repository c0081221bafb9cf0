{#-
  Fails for every row where the SQL `expression` is false (a null result passes, as in dbt_utils).
  On a column, the expression continues the column name; on a table (or model), it stands alone.
  Ingestion checks a source's expressions row by row on the typed values, so write them in
  DuckDB SQL over the declared columns.

      columns:
        - name: hr
          data_tests:
            - expression_is_true:
                arguments: {expression: "between 0 and 23"}
      data_tests:
        - expression_is_true:
            arguments: {expression: "casual + registered = cnt"}
-#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not (
    {%- if column_name is not none %} {{ column_name }}{% endif %} {{ expression }}
)

{% endtest %}
