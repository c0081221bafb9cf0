{#-
  The one rule every daily model uses to decide which days a run (re)builds.

  A daily model is incremental, appends the days it builds, and deletes those same days first in
  a pre_hook, so a run REPLACES its window (on Spark the window's partitions are overwritten
  instead: macros/cross_db/incremental.sql):

      {{ config(
          materialized='incremental',
          incremental_strategy=partition_window_strategy(),
          partition_by=partition_window_partition_by('transaction_date'),
          tags=['daily'],
          meta={'headwater': {'partition_column': 'transaction_date'}},
          pre_hook="{{ delete_partition_window('transaction_date') }}",
      ) }}
      ...
      select * from {{ ref('stg_payments__transactions') }}
      where {{ partition_window_filter('transaction_date') }}

  `tags=['daily']` is what Dagster selects to run per daily partition, and
  `meta.headwater.partition_column` is the column it counts a partition's rows by; keep it equal
  to the column given to delete_partition_window.

  The window, [start, end) on a date or timestamp column, at the project's partition grain
  (vars.headwater.partitions.grain in dbt_project.yml: hourly, daily, weekly or monthly):
    * vars min_date (and usually max_date, exclusive) set -> exactly [min_date, max_date). This is
      how Dagster runs one partition (or a backfill range): dates, or UTC timestamps
      ('2011-01-01 05:00:00') for hourly partitions. max_date left out = open-ended.
    * no vars, incremental run -> [start of the partition holding max(column) already in the
      table, open-ended): the last loaded partition is rebuilt (it may have been partial) and
      every newer one is added.
    * no vars, first run or --full-refresh -> everything.
  Vars win over a missing table or --full-refresh: the table is then (re)created with only the
  window, which is right for a first partition and wrong for a full rebuild (run that without vars).
  Re-running a window never duplicates rows, a window whose source rows are gone ends empty, and
  days outside the window are untouched. The delete and the filter render the same predicate, and
  the delete only runs when the table already exists (is_incremental()).
-#}

{#- {'start': 'YYYY-MM-DD' or none, 'end': 'YYYY-MM-DD' (exclusive) or none} for this model. -#}
{% macro get_partition_window(column) -%}
    {%- set min_date = var('min_date', none) -%}
    {%- set max_date = var('max_date', none) -%}

    {%- if min_date is not none -%}
        {%- set start = _partition_window_date('min_date', min_date) -%}
        {%- set end = _partition_window_date('max_date', max_date) if max_date is not none else none -%}
        {%- if end is not none and end <= start -%}
            {{ exceptions.raise_compiler_error(
                "partition window: max_date (" ~ end ~ ") must be after min_date (" ~ start
                ~ "); max_date is exclusive"
            ) }}
        {%- endif -%}
        {{ return({'start': start, 'end': end}) }}

    {%- elif max_date is not none -%}
        {{ exceptions.raise_compiler_error(
            "partition window: max_date is set but min_date is not; pass both (max_date exclusive)"
        ) }}

    {%- elif is_incremental() and execute -%}
        {%- set last_loaded = run_query(
            "select cast(date_trunc('" ~ partition_grain_unit() ~ "', max(" ~ column ~ ")) as "
            ~ dbt.type_string() ~ ")"
            ~ " from " ~ this
        ).columns[0].values()[0] -%}
        {{ return({'start': last_loaded, 'end': none}) }}

    {%- else -%}
        {{ return({'start': none, 'end': none}) }}
    {%- endif -%}
{%- endmacro %}


{#-
  The window as a boolean SQL predicate on `column` (`true` when the window is unbounded).
  model_column: this model's own partition column (the one given to delete_partition_window) when
  the filtered column is named differently, e.g. partition_window_filter('transaction_date',
  model_column='activity_date'); it is where a no-vars incremental run looks up the last loaded day.
  lookback / ahead: days to widen the window by, [start - lookback, end + ahead): what a feature
  model reads before its window (macros/feature_window.sql), or the older rows a run rewrites.
-#}
{% macro partition_window_filter(column, model_column=none, lookback=0, ahead=0) -%}
    {%- set window = get_partition_window(model_column or column) -%}
    {%- set predicates = [] -%}
    {%- if window.start is not none -%}
        {%- do predicates.append(column ~ " >= " ~ _partition_window_literal(_partition_window_shift(window.start, -lookback))) -%}
    {%- endif -%}
    {%- if window.end is not none -%}
        {%- do predicates.append(column ~ " < " ~ _partition_window_literal(_partition_window_shift(window.end, ahead))) -%}
    {%- endif -%}
    {{- '(' ~ (predicates | join(' and ')) ~ ')' if predicates else 'true' -}}
{%- endmacro %}


{#- pre_hook: delete the window's rows from the existing table; renders nothing on a full build.
    On Spark it renders nothing at all: the window's partitions are overwritten instead
    (macros/cross_db/incremental.sql). -#}
{% macro delete_partition_window(column) -%}
    {{ return(adapter.dispatch('delete_partition_window')(column)) }}
{%- endmacro %}

{% macro default__delete_partition_window(column) -%}
    {{- delete_rows(partition_window_filter(column)) -}}
{%- endmacro %}

{% macro spark__delete_partition_window(column) -%}
{%- endmacro %}


{#- pre_hook: delete the rows a run rewrites (`predicate`) from the existing table; nothing on a
    full build. The feature models call it with their own predicate (macros/feature_window.sql),
    on every engine: their rewritten rows are not whole partitions. -#}
{% macro delete_rows(predicate) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ predicate }}
    {%- endif -%}
{%- endmacro %}


{#- The project's partition grain (vars.headwater.partitions.grain), as date_trunc's unit. -#}
{% macro partition_grain_unit() -%}
    {%- set grain = (var('headwater', {}).get('partitions') or {}).get('grain') or 'daily' -%}
    {%- set units = {'hourly': 'hour', 'daily': 'day', 'weekly': 'week', 'monthly': 'month'} -%}
    {%- if grain not in units -%}
        {{ exceptions.raise_compiler_error(
            "vars.headwater.partitions.grain in dbt_project.yml is '" ~ grain
            ~ "'; one of hourly, daily, weekly, monthly"
        ) }}
    {%- endif -%}
    {{ return(units[grain]) }}
{%- endmacro %}


{#- A window bound as SQL: a date literal, or a timestamp literal when it has a time. -#}
{% macro _partition_window_literal(text) -%}
    {%- set kind = 'date' if text | length == 10 else 'timestamp' -%}
    {{- kind ~ " '" ~ text ~ "'" -}}
{%- endmacro %}


{#- A var must be an ISO date, or a timestamp for hourly partitions (YAML may already have
    parsed it into a date; both are fine). -#}
{% macro _partition_window_date(name, value) -%}
    {%- set text = value | string | trim -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}(:[0-9]{2})?)?', text) -%}
        {{ exceptions.raise_compiler_error(
            "partition window: var " ~ name ~ " must be a date like 2025-01-03 (or a timestamp "
            ~ "like 2025-01-03 05:00:00 for hourly partitions), got '" ~ text ~ "'"
        ) }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}


{#- A window bound ('YYYY-MM-DD' or a timestamp) moved by `days`, in the same format. -#}
{% macro _partition_window_shift(text, days) -%}
    {%- set dt = modules.datetime -%}
    {%- if days == 0 -%}
        {{ return(text) }}
    {%- elif text | length == 10 -%}
        {{ return((dt.date.fromisoformat(text) + dt.timedelta(days=days)).isoformat()) }}
    {%- else -%}
        {{ return((dt.datetime.fromisoformat(text) + dt.timedelta(days=days)).strftime('%Y-%m-%d %H:%M:%S')) }}
    {%- endif -%}
{%- endmacro %}
