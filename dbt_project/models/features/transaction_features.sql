{#-
  Per-transaction features over the customer's and merchant's history, point-in-time correct:
  every window ends strictly before the transaction's own timestamp (`1 microsecond preceding`),
  so a row never sees itself, a later row, or a row at the same instant.
  The merchant's fraud rate uses matured labels only: the transactions of days D-120 .. D-61 for a
  transaction on day D, whose chargebacks had all arrived by D-1 (merchant_daily_label_stats).
  Owned by the ML code location; analysts edit it like any other model.

  Incremental (macros/feature_window.sql): a run writes the transactions of its window and reads
  the 30 days before it for the windows (transaction_windows) and the 120 days before it of
  merchant_daily_label_stats (matured_merchant_rate). The one unbounded window, customer_before,
  is carried: a customer with no earlier transaction in those 30 days takes the latest one before
  them from fct_transactions (one max per customer).

  The customers' windows are computed one of two ways, equal row for row
  (tests/integration/test_incremental_features.py compares a one-day run with the full build):
    * a window of up to `pairwise_days` days on DuckDB (a day's run): each of its transactions
      joined with its customer's earlier ones. A day at 1M transactions is 8k rows with ~40
      earlier ones each; 0.05 s, where the windows compute every one of the 30 days' 211k rows
      that they read (0.19 s).
    * otherwise (a backfill, a full build, Spark): the windows, whose cost grows with the rows
      they read, not with the rows times their history.
-#}

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        meta={'headwater': {'partition_column': 'transaction_date'}},
        pre_hook="{{ delete_rows(partition_window_filter('transaction_date')) }}",
    )
}}

{%- set lookback = feature_lookback_days('transaction_windows') %}
{%- set windowed = partition_window_filter('transaction_date') != 'true' %}
{%- set pairwise_days = 3 %}
{%- set window_days = feature_window_days(ref('fct_transactions'), 'transaction_date')
    if windowed and target.type == 'duckdb' else none %}
{%- set pairwise = window_days is not none and window_days <= pairwise_days %}

with

-- the window's transactions and the lookback their windows read
transactions as (

    select * from {{ ref('fct_transactions') }}
    where {{ partition_window_filter('transaction_date', lookback=lookback) }}

),

merchant_daily_label_stats as (

    select * from {{ ref('merchant_daily_label_stats') }}
    where {{ partition_window_filter(
        'transaction_date', lookback=feature_lookback_days('matured_merchant_rate')
    ) }}

),

-- each customer's latest transaction before the lookback (none on a full build)
carried_before as (

    {%- set lookback_start = feature_window_start('transaction_date', lookback=lookback) %}
    select
        customer_id,
        max(transacted_at) as transacted_at

    from {{ ref('fct_transactions') }}
    {% if lookback_start is none -%}
    where false
    {%- else -%}
    where transaction_date < {{ lookback_start }}
    {%- endif %}

    group by 1

),

-- the window's own rows, the only ones written: with a window, each window function below reads
-- only the rows that can fall into a frame of one of them (a full build reads them all)
written as (

    select transaction_id, customer_id, merchant_id, transacted_at
    from transactions
    where {{ partition_window_filter('transaction_date') }}

),

-- the customers' windows, for each transaction of the window (the header says why two ways)
customer_history as (

    {% if pairwise -%}
    select
        written.transaction_id,

        count(earlier.transacted_at) filter (
            where earlier.transacted_at >= written.transacted_at - interval 1 hour
        ) as customer_txn_count_1h,
        count(earlier.transacted_at) filter (
            where earlier.transacted_at >= written.transacted_at - interval 24 hours
        ) as customer_txn_count_24h,
        count(earlier.transacted_at) filter (
            where earlier.transacted_at >= written.transacted_at - interval 7 days
        ) as customer_txn_count_7d,
        coalesce(sum(earlier.amount) filter (
            where earlier.transacted_at >= written.transacted_at - interval 24 hours
        ), 0) as customer_amount_24h,
        avg(earlier.amount) filter (
            where earlier.transacted_at >= written.transacted_at - interval 30 days
        ) as customer_avg_amount_30d,
        -- customer_before: every earlier row read, as the unbounded window sees them
        max(earlier.transacted_at) as customer_prev_transacted_at

    from written
    -- strictly earlier: never the row itself, a later row, or one at the same instant
    left join transactions as earlier
        on earlier.customer_id = written.customer_id
        and earlier.transacted_at < written.transacted_at
    group by written.transaction_id

    {%- else -%}
    select
        transaction_id,

        count(*) over customer_1h as customer_txn_count_1h,
        count(*) over customer_24h as customer_txn_count_24h,
        count(*) over customer_7d as customer_txn_count_7d,
        coalesce(sum(amount) over customer_24h, 0) as customer_amount_24h,
        avg(amount) over customer_30d as customer_avg_amount_30d,
        max(transacted_at) over customer_before as customer_prev_transacted_at

    from transactions
    {% if windowed -%}
    where customer_id in (select customer_id from written)
    {% endif -%}
    window
        customer_1h as (
            partition by customer_id
            {{ range_frame('transacted_at', '-1 hour', '-1 microsecond') }}
        ),
        customer_24h as (
            partition by customer_id
            {{ range_frame('transacted_at', '-24 hours', '-1 microsecond') }}
        ),
        customer_7d as (
            partition by customer_id
            {{ range_frame('transacted_at', '-7 days', '-1 microsecond') }}
        ),
        customer_30d as (
            partition by customer_id
            {{ range_frame('transacted_at', '-30 days', '-1 microsecond') }}
        ),
        customer_before as (
            partition by customer_id
            {{ range_frame('transacted_at', 'unbounded', '-1 microsecond') }}
        )

    {%- endif %}

),

-- the merchants' 24 hours: the window's days and the day before
merchant_history as (

    select
        transaction_id,
        count(*) over merchant_24h as merchant_txn_count_24h

    from transactions
    where {{ partition_window_filter(
        'transacted_at', model_column='transaction_date', lookback=feature_lookback_days('merchant_window')
    ) }}
    window
        merchant_24h as (
            partition by merchant_id
            {{ range_frame('transacted_at', '-24 hours', '-1 microsecond') }}
        )

),

-- the transactions of the window's customer-merchant pairs
pair_transactions as (

    select transactions.*
    from transactions
    {% if windowed -%}
    inner join (select distinct customer_id, merchant_id from written) as written_pairs
        on transactions.customer_id = written_pairs.customer_id
        and transactions.merchant_id = written_pairs.merchant_id
    {% endif %}

),

-- the customer's earlier transactions at the merchant
customer_merchant_history as (

    select
        transaction_id,
        count(*) over customer_merchant_30d as customer_merchant_txn_count_30d

    from pair_transactions
    window
        customer_merchant_30d as (
            partition by customer_id, merchant_id
            {{ range_frame('transacted_at', '-30 days', '-1 microsecond') }}
        )

),

-- per merchant and day D: days D-120 .. D-61, whose labels have all matured by D-1 (61 is
-- label_maturity_days())
merchant_matured_labels as (

    select
        merchant_id,
        transaction_date,

        cast(coalesce(sum(transaction_count) over matured_days, 0) as bigint)
            as merchant_txn_count_matured,
        cast(coalesce(sum(chargebacked_transaction_count) over matured_days, 0) as bigint)
            as merchant_chargebacked_count_matured

    from merchant_daily_label_stats
    window
        matured_days as (
            partition by merchant_id
            {{ range_frame(
                'transaction_date',
                '-' ~ (label_maturity_days() + 59) ~ ' days',
                '-' ~ label_maturity_days() ~ ' days'
            ) }}
        )

),

final as (

    select
        transactions.transaction_id,
        transactions.customer_id,
        transactions.merchant_id,
        transactions.transacted_at,
        transactions.transaction_date,

        transactions.amount,
        transactions.channel,
        transactions.hour_of_day,
        transactions.is_night,
        transactions.is_home_region,
        transactions.merchant_category,
        transactions.merchant_risk_tier,

        customer_history.customer_txn_count_1h,
        customer_history.customer_txn_count_24h,
        customer_history.customer_txn_count_7d,
        customer_history.customer_amount_24h,
        customer_history.customer_avg_amount_30d,
        transactions.amount / nullif(customer_history.customer_avg_amount_30d, 0)
            as amount_to_customer_avg_30d,
        merchant_history.merchant_txn_count_24h,

        {{ date_difference(
            'second',
            'coalesce(customer_history.customer_prev_transacted_at, carried_before.transacted_at)',
            'transactions.transacted_at'
        ) }} as seconds_since_customer_prev_txn,
        customer_merchant_history.customer_merchant_txn_count_30d = 0
            as is_new_merchant_for_customer,

        coalesce(merchant_matured_labels.merchant_txn_count_matured, 0)
            as merchant_txn_count_matured,
        cast(merchant_matured_labels.merchant_chargebacked_count_matured as double)
            / nullif(merchant_matured_labels.merchant_txn_count_matured, 0)
            as merchant_fraud_rate_matured

    from transactions
    inner join customer_history
        on transactions.transaction_id = customer_history.transaction_id
    inner join merchant_history
        on transactions.transaction_id = merchant_history.transaction_id
    inner join customer_merchant_history
        on transactions.transaction_id = customer_merchant_history.transaction_id
    left join merchant_matured_labels
        on transactions.merchant_id = merchant_matured_labels.merchant_id
        and transactions.transaction_date = merchant_matured_labels.transaction_date
    left join carried_before
        on transactions.customer_id = carried_before.customer_id

    -- the window's own rows (the lookback was read, not written)
    where {{ partition_window_filter('transactions.transaction_date', model_column='transaction_date') }}

)

select * from final
