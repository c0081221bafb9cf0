{#-
  The spend model's features: one row per customer and as_of_date (customer_weekly_spine), from
  the transactions strictly before as_of_date 00:00 only (point-in-time correct), plus the
  customer's attributes. The label is in customer_spend_labels, on the same grain.

  One pass of window functions instead of a join per row: each customer's daily totals and their
  as-of rows share one timeline ordered by day, and every window on an as-of row ends on the day
  before (`interval 1 day preceding`), so nothing of as_of_date itself or later is read.

  Incremental (macros/feature_window.sql): a run writes the as_of_dates of its window and reads
  the 90 days before it (customer_weekly_windows). The unbounded last_transaction_date is carried:
  with no transaction in those 90 days, the customer's latest day before them (one max per
  customer). Customer attributes are the dimension's when the row was written.
-#}

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        meta={'headwater': {'partition_column': 'as_of_date'}},
        pre_hook="{{ delete_rows(partition_window_filter('as_of_date')) }}",
    )
}}

{%- set lookback = feature_lookback_days('customer_weekly_windows') %}
{%- set lookback_start = feature_window_start('as_of_date', lookback=lookback) %}

with

spine as (

    select * from {{ ref('customer_weekly_spine') }}
    where {{ partition_window_filter('as_of_date') }}

),

-- the lookback of the customers with an as-of row to write: none on the six days a week whose
-- window holds no Monday
transactions as (

    select * from {{ ref('fct_transactions') }}
    where {{ partition_window_filter('transaction_date', lookback=lookback, model_column='as_of_date') }}
        and customer_id in (select customer_id from spine)

),

-- each customer's latest day with a transaction before the lookback (none on a full build)
carried_before as (

    select
        customer_id,
        max(transaction_date) as last_transaction_date

    from {{ ref('fct_transactions') }}
    {% if lookback_start is none -%}
    where false
    {%- else -%}
    where transaction_date < {{ lookback_start }}
        and customer_id in (select customer_id from spine)
    {%- endif %}

    group by 1

),

customers as (

    select * from {{ ref('dim_customers') }}

),

customer_days as (

    select
        customer_id,
        transaction_date,
        sum(amount) as amount,
        count(*) as transaction_count

    from transactions

    group by 1, 2

),

-- the customer's days with transactions and their as-of rows (amount null) in one timeline
timeline as (

    select
        customer_id,
        transaction_date as timeline_date,
        transaction_date,
        amount,
        transaction_count,
        false as is_as_of_row

    from customer_days

    union all

    select
        customer_id,
        as_of_date as timeline_date,
        null as transaction_date,
        null as amount,
        null as transaction_count,
        true as is_as_of_row

    from spine

),

history as (

    select
        customer_id,
        timeline_date,
        is_as_of_row,

        sum(amount) over before_7d as spend_7d,
        sum(amount) over before_30d as spend_30d,
        sum(amount) over before_90d as spend_90d,
        sum(transaction_count) over before_30d as txn_count_30d,
        sum(transaction_count) over before_90d as txn_count_90d,
        max(transaction_date) over before_all as last_transaction_date

    from timeline
    window
        before_7d as (
            partition by customer_id
            {{ range_frame('timeline_date', '-7 days', '-1 day') }}
        ),
        before_30d as (
            partition by customer_id
            {{ range_frame('timeline_date', '-30 days', '-1 day') }}
        ),
        before_90d as (
            partition by customer_id
            {{ range_frame('timeline_date', '-90 days', '-1 day') }}
        ),
        before_all as (
            partition by customer_id
            {{ range_frame('timeline_date', 'unbounded', '-1 day') }}
        )

),

as_of_history as (

    select * from history
    where is_as_of_row

),

final as (

    select
        spine.customer_id,
        spine.as_of_date,

        customers.segment,
        customers.home_region,
        {{ date_difference('day', 'customers.signed_up_date', 'spine.as_of_date') }} as tenure_days,

        coalesce(as_of_history.spend_7d, 0) as spend_7d,
        coalesce(as_of_history.spend_30d, 0) as spend_30d,
        coalesce(as_of_history.spend_90d, 0) as spend_90d,
        cast(coalesce(as_of_history.txn_count_30d, 0) as bigint) as txn_count_30d,
        cast(as_of_history.spend_90d as double)
            / nullif(as_of_history.txn_count_90d, 0) as avg_amount_90d,
        {{ date_difference(
            'day',
            'coalesce(as_of_history.last_transaction_date, carried_before.last_transaction_date)',
            'spine.as_of_date'
        ) }} as days_since_last_txn

    from spine

    inner join as_of_history
        on spine.customer_id = as_of_history.customer_id
        and spine.as_of_date = as_of_history.timeline_date

    left join customers
        on spine.customer_id = customers.customer_id

    left join carried_before
        on spine.customer_id = carried_before.customer_id

)

select * from final
