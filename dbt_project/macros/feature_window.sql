{#-
  How the `features` layer is built incrementally, point-in-time correct.

  Each feature model is incremental on its own date column and, like the daily marts, REPLACES a
  window of rows per run (macros/partition_window.sql decides the window [start, end): the vars,
  or from the last loaded partition on). Two things differ from a mart:

    * a row reads history: a model reads its inputs from `start - lookback` on, and only its own
      rows of the window are written, so a new day costs the lookback, not all history;
    * a label changes after its row's day: rows whose label can still change are rewritten too,
      `start - lookback` on, with the same predicate in the delete and the select.

  Every lookback is declared here, once (days, on the input's date column):
-#}

{#- Days of history a model reads, or of earlier rows it rewrites, before the window's start. -#}
{% macro feature_lookback_days(name) -%}
    {%- set lookbacks = {
        'transaction_windows': 30,
        'merchant_window': 1,
        'customer_weekly_windows': 90,
        'matured_merchant_rate': label_maturity_days() + 59,
        'fraud_label': label_maturity_days() - 1,
        'spend_label': 29,
    } -%}
    {#-
      transaction_windows      transaction_features' longest window (customer_30d,
                               customer_merchant_30d); its unbounded customer_before is carried
                               (feature_carried_before)
      merchant_window          transaction_features' merchant_24h (a day before the window's
                               start covers 24 hours before any of its transactions)
      customer_weekly_windows  customer_weekly_features' longest window (spend_90d); its
                               unbounded last_transaction_date is carried
      matured_merchant_rate    days D-120 .. D-61 of merchant_daily_label_stats
      fraud_label              a merchant-day's chargebacked count changes until its
                               transactions' chargebacks' last day, transaction_date + 60
                               (merchant_daily_label_stats; fraud_labels rewrites only the labels
                               a chargeback of the window changes: fraud_label_rows_filter)
      spend_label              customer_spend_labels of as_of_date A sums days A .. A + 29
    -#}
    {%- if name not in lookbacks -%}
        {{ exceptions.raise_compiler_error("feature_lookback_days: unknown lookback '" ~ name ~ "'") }}
    {%- endif -%}
    {{ return(lookbacks[name]) }}
{%- endmacro %}


{#- The SQL literal's text of the window's start, shifted by days (none: the window is unbounded). -#}
{% macro feature_window_start(column, lookback=0) -%}
    {%- set window = get_partition_window(column) -%}
    {{ return(none if window.start is none else _partition_window_literal(_partition_window_shift(window.start, -lookback))) }}
{%- endmacro %}


{#-
  How many days of `relation`'s `column` fall in the window (none: the window is unbounded, or
  dbt is parsing). A model whose history is cheaper row by row than as windows over the whole
  lookback reads it to choose (transaction_features' customer windows).
-#}
{% macro feature_window_days(relation, column) -%}
    {%- set window = get_partition_window(column) -%}
    {%- if window.start is none or not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set found = run_query(
        "select count(distinct " ~ column ~ ") from " ~ relation
        ~ " where " ~ partition_window_filter(column)
    ) -%}
    {{ return(found.columns[0].values()[0]) }}
{%- endmacro %}


{#-
  How fraud_labels replaces rows, per engine: the rows it selects (fraud_label_rows_filter), the
  rows its pre_hook deletes first (fraud_label_deleted_rows) and its strategy.

  DuckDB: the transactions of the window, and every older one whose label no longer matches
  fct_chargebacks (changed_fraud_labels): a chargeback arrived, corrected or taken back, on
  whatever day it was reported, late files and the promise's exceptions included, as a full
  build would label it. That compares the chargebacks' first report per transaction with the
  table's fraud rows (a few per cent of the transactions). The pre_hook deletes the window's rows
  only, so the table can still be read for the comparison; delete+insert on transaction_id then
  replaces the older ones. On a first build with a window: the window's transactions and those of
  its chargebacks.

  Spark: plain Parquet tables have no MERGE, and dbt-spark refuses the strategy on them even for
  a full build, so Spark keeps `append` after deleting every row a run may rewrite: the window,
  the 60 days before it (fraud_label) and the transactions of the window's chargebacks. A
  chargeback taken back after those 60 days stays until a `--full-refresh` there.
-#}
{% macro fraud_label_rows_filter() -%}
    {{ return(adapter.dispatch('fraud_label_rows_filter')()) }}
{%- endmacro %}

{% macro default__fraud_label_rows_filter() -%}
    {%- set window = partition_window_filter('transaction_date') -%}
    {%- if window == 'true' -%}
        true
    {%- elif not is_incremental() -%}
        ({{ window }} or {{ _window_chargebacks() }})
    {%- else -%}
        ({{ window }} or transaction_id in ({{ changed_fraud_labels() }}))
    {%- endif -%}
{%- endmacro %}

{#- The transactions whose fraud label in this table is not what fct_chargebacks says now. -#}
{% macro changed_fraud_labels() -%}
    select transaction_id
            from (
                select transaction_id, min(reported_at) as first_reported_at
                from {{ ref('fct_chargebacks') }}
                group by 1
            ) as charged_back
            full outer join (
                select transaction_id, chargeback_reported_at
                from {{ this }}
                where is_fraud
            ) as labelled
                using (transaction_id)
            where charged_back.first_reported_at is distinct from labelled.chargeback_reported_at
{%- endmacro %}

{% macro spark__fraud_label_rows_filter() -%}
    {%- set recent = partition_window_filter(
        'transaction_date', lookback=feature_lookback_days('fraud_label')) -%}
    {{- 'true' if recent == 'true' else '(' ~ recent ~ ' or ' ~ _window_chargebacks() ~ ')' -}}
{%- endmacro %}


{% macro fraud_label_deleted_rows() -%}
    {{ return(adapter.dispatch('fraud_label_deleted_rows')()) }}
{%- endmacro %}

{% macro default__fraud_label_deleted_rows() -%}
    {{ return(partition_window_filter('transaction_date')) }}
{%- endmacro %}

{% macro spark__fraud_label_deleted_rows() -%}
    {{ return(fraud_label_rows_filter()) }}
{%- endmacro %}


{% macro fraud_label_strategy() -%}
    {{ return(adapter.dispatch('fraud_label_strategy')()) }}
{%- endmacro %}

{% macro default__fraud_label_strategy() -%}
    {{ return('delete+insert') }}
{%- endmacro %}

{% macro spark__fraud_label_strategy() -%}
    {{ return('append') }}
{%- endmacro %}


{#- Transactions with a chargeback reported in the window. -#}
{% macro _window_chargebacks() -%}
    transaction_id in (
            select transaction_id from {{ ref('fct_chargebacks') }}
            where {{ partition_window_filter('reported_date', model_column='transaction_date') }}
        )
{%- endmacro %}

