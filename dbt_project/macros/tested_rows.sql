{#-
  Which rows a data test reads: in a windowed run, the rows the run wrote, so that a new day's
  tests cost a day, not the whole history.

  dbt calls get_where_subquery for the model every generic test runs on (dbt's own applies
  the test's `where` config and nothing else). Here, when Dagster passes a window
  (vars min_date/max_date) and the tested model declares the column it is partitioned by,

      meta:
        headwater:
          partition_column: transaction_date   # the window's column (a daily model's already)
          rewrite_lookback: fraud_label        # optional: the run also rewrites the rows of
                                               # feature_lookback_days(name) days before it

  the test reads only the rows the run rewrote: the window, and the lookback before it.
  `unique` and `unique_combination_of_columns` also read every older or newer row sharing a key
  with those rows (a semi-join on the key), so a key is still unique across the whole table:
  a duplicate in another day fails today's test.

  Without a window (an analyst's `dbt build`, a full rebuild, the unpartitioned steps) every
  row is tested, as dbt does by default; so is a model that declares no partition column.
  A test's own `where` config still applies, inside the window.
-#}

{% macro get_where_subquery(relation) -%}
    {%- set predicates = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do predicates.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set written = _tested_window(relation) -%}
    {%- if written is none -%}
        {%- if predicates -%}
            {{ return('(select * from ' ~ relation ~ ' where ' ~ predicates[0] ~ ') dbt_subquery') }}
        {%- endif -%}
        {{ return(relation) }}
    {%- endif -%}

    {%- set keys = _tested_keys() -%}
    {%- set scoped = predicates + [written] -%}
    {%- set subquery -%}
        (select * from {{ relation }} where {{ scoped | join(' and ') }}
        {%- if keys %}
        union all
        -- rows outside the window that share a key with the window's rows
        select * from {{ relation }} as hw_elsewhere
        where {{ (predicates + ['not ' ~ written]) | join(' and ') }}
            and exists (
                select 1 from {{ relation }} as hw_written
                where {{ scoped | join(' and ') }}
                {%- for key in keys %}
                    and hw_written.{{ key }} = hw_elsewhere.{{ key }}
                {%- endfor %}
            )
        {%- endif %}
        ) dbt_subquery
    {%- endset -%}
    {{ return(subquery) }}
{%- endmacro %}


{#- The predicate on the rows this run wrote of the tested relation, or none (test all rows). -#}
{% macro _tested_window(relation) -%}
    {%- if var('min_date', none) is none or not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model'
            and node.alias | lower == relation.identifier | lower
            and node.schema | lower == relation.schema | lower -%}
            {%- set headwater = node.config.meta.get('headwater', {}) -%}
            {%- set column = headwater.get('partition_column') -%}
            {%- if column is none -%}
                {{ return(none) }}
            {%- endif -%}
            {%- set lookback = headwater.get('rewrite_lookback') -%}
            {{ return(feature_window_filter(
                column,
                lookback=feature_lookback_days(lookback) if lookback else 0,
                model_column=column,
            )) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}


{#- The key columns of a uniqueness test (this test node's arguments); [] for other tests. -#}
{% macro _tested_keys() -%}
    {%- set test = model.get('test_metadata') or {} -%}
    {%- set kwargs = test.get('kwargs', {}) -%}
    {%- if test.get('name') == 'unique' -%}
        {{ return([kwargs.get('column_name')]) }}
    {%- elif test.get('name') == 'unique_combination_of_columns' -%}
        {{ return(kwargs.get('combination_of_columns')) }}
    {%- endif -%}
    {{ return([]) }}
{%- endmacro %}
