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
        'customer_weekly_windows': 90,
        'matured_merchant_rate': label_maturity_days() + 59,
        'fraud_label': label_maturity_days() - 1,
        'spend_label': 29,
    } -%}
    {#-
      transaction_windows      transaction_features' longest window (customer_30d,
                               customer_merchant_30d); its unbounded customer_before is carried
                               (feature_carried_before)
      customer_weekly_windows  customer_weekly_features' longest window (spend_90d); its
                               unbounded last_transaction_date is carried
      matured_merchant_rate    days D-120 .. D-61 of merchant_daily_label_stats
      fraud_label              a transaction's label (and its merchant-day's chargebacked count)
                               changes until its chargebacks' last day, transaction_date + 60
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
  The rows of fraud_labels a run rewrites: transactions of the window and of the 60 days before
  (their labels may still change), plus older transactions whose chargeback arrived in the window
  (a chargeback beyond the 60-day promise still makes a transaction fraud, as in a full build).
-#}
{% macro fraud_label_rows_filter() -%}
    {%- set recent = partition_window_filter(
        'transaction_date', lookback=feature_lookback_days('fraud_label')) -%}
    {%- if recent == 'true' -%}
        true
    {%- else -%}
        ({{ recent }} or transaction_id in (
            select transaction_id from {{ ref('fct_chargebacks') }}
            where {{ partition_window_filter('reported_date', model_column='transaction_date') }}
        ))
    {%- endif -%}
{%- endmacro %}

