{#-
  Which rows a data test reads: in a windowed run, the rows the run wrote, so that a new day's
  tests cost a day, not the whole history.

  dbt calls get_where_subquery for the model every generic test runs on (dbt's own applies
  the test's `where` config and nothing else). Here, when Dagster passes a window
  (vars min_date/max_date) and the tested model declares the column it is partitioned by,

      meta:
        headwater:
          partition_column: transaction_date   # the window's column (a daily model's already)
          rewrite_days: 60                     # optional: the run also rewrites the rows of
                                               # that many days before the window

  the test reads only the rows the run rewrote: the window, and the `rewrite_days` before it.
  `unique` and `unique_combination_of_columns` read every row whose key is one of those rows'
  keys (`key in (select key ... where <window>)`), so a key is still unique across the whole
  table: a duplicate in another day fails today's test. `unique_and_not_null` reads those rows
  and the window's own (a row of the window with a null key holds no key to match). A key that
  holds the partition column cannot repeat in another window, and reads the window only.

  Without a window (an analyst's `dbt build`, a full rebuild, the unpartitioned steps) every
  row is tested, as dbt does by default; so is a model that declares no partition column.
  A test's own `where` config still applies, inside the window.
-#}

{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set predicates = ['(' ~ where ~ ')'] if where else [] -%}
    {%- set written = _tested_window(relation) -%}
    {%- if written is not none -%}
        {%- set column, window = written -%}
        {%- set keys = _tested_keys() -%}
        {%- if keys and column not in keys and _rows_outside(relation, window) -%}
            {#- the rows of the window's keys, in any day: a key of the window found in another
                day is a duplicate too (a key holding the partition column cannot be; with no
                row outside the window, as in a backfill of all history, there is no other day) -#}
            {%- set key = keys | join(', ') -%}
            {%- set window_keys = 'select ' ~ key ~ ' from ' ~ relation ~ ' where '
                ~ (predicates + [window]) | join(' and ') -%}
            {%- set same_keys = '(' ~ key ~ ') in (' ~ window_keys ~ ')' -%}
            {%- if _tests_nulls() -%}
                {%- set same_keys = '(' ~ same_keys ~ ' or ' ~ window ~ ')' -%}
            {%- endif -%}
            {%- do predicates.append(same_keys) -%}
        {%- else -%}
            {%- do predicates.append(window) -%}
        {%- endif -%}
    {%- endif -%}
    {%- if not predicates -%}
        {{ return(relation) }}
    {%- endif -%}
    {{ return('(select * from ' ~ relation ~ ' where ' ~ predicates | join(' and ') ~ ') dbt_subquery') }}
{%- endmacro %}


{#- [the tested relation's partition column, the predicate on the rows this run wrote], or none
    (test every row). -#}
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
            {{ return([column, partition_window_filter(
                column, lookback=headwater.get('rewrite_days') or 0)]) }}
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
    {%- elif test.get('name') == 'unique_and_not_null' -%}
        {{ return(kwargs.get('unique_key')) }}
    {%- endif -%}
    {{ return([]) }}
{%- endmacro %}


{#- Whether this test node also reads the window's rows for nulls (unique_and_not_null). -#}
{% macro _tests_nulls() -%}
    {{ return((model.get('test_metadata') or {}).get('name') == 'unique_and_not_null') }}
{%- endmacro %}


{#- Whether `relation` holds a row outside `window` (one row read when it does). -#}
{% macro _rows_outside(relation, window) -%}
    {%- set found = run_query('select 1 from ' ~ relation ~ ' where not ' ~ window ~ ' limit 1') -%}
    {{ return(found.rows | length > 0) }}
{%- endmacro %}

