{#-
  The spend model's label: one row per customer and as_of_date (customer_weekly_spine), the
  customer's spend in the 30 days from as_of_date 00:00 (as_of_date through as_of_date + 29).
  The label is only final at label_matures_at: a training job may use a row only when
  label_matures_at <= its training cut-off (and the cut-off must not be later than the end of the
  loaded transactions).

  Incremental (macros/feature_window.sql): a run rewrites the as_of_dates of its window and of the
  29 days before it (spend_label), whose 30 days reach into the window, and reads their 30 days.
-#}

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        meta={'headwater': {'partition_column': 'as_of_date', 'rewrite_days': feature_lookback_days('spend_label')}},
        pre_hook="{{ delete_rows(partition_window_filter(
            'as_of_date', lookback=feature_lookback_days('spend_label'))) }}",
    )
}}

{%- set lookback = feature_lookback_days('spend_label') %}

with

-- the as-of rows rewritten
spine as (

    select * from {{ ref('customer_weekly_spine') }}
    where {{ partition_window_filter('as_of_date', lookback=lookback) }}

),

-- their 30 days: from the first rewritten as_of_date to 29 days after the window
transactions as (

    select * from {{ ref('fct_transactions') }}
    where {{ partition_window_filter(
        'transaction_date', lookback=lookback, ahead=lookback, model_column='as_of_date'
    ) }}

),

customer_days as (

    select
        customer_id,
        transaction_date,
        sum(amount) as amount

    from transactions

    group by 1, 2

),

-- the customer's days with transactions and their as-of rows (amount null) in one timeline
timeline as (

    select
        customer_id,
        transaction_date as timeline_date,
        amount,
        false as is_as_of_row

    from customer_days

    union all

    select
        customer_id,
        as_of_date as timeline_date,
        null as amount,
        true as is_as_of_row

    from spine

),

future as (

    select
        customer_id,
        timeline_date,
        is_as_of_row,

        -- days as_of_date .. as_of_date + 29: transacted_at in [as_of_date, as_of_date + 30 days)
        sum(amount) over (
            partition by customer_id
            {{ range_frame('timeline_date', 'current', '+29 days') }}
        ) as spend_next_30d

    from timeline

),

final as (

    select
        spine.customer_id,
        spine.as_of_date,

        coalesce(future.spend_next_30d, 0) as spend_next_30d,
        cast(spine.as_of_date + interval 30 days as timestamp) as label_matures_at

    from spine

    inner join future
        on spine.customer_id = future.customer_id
        and spine.as_of_date = future.timeline_date
        and future.is_as_of_row

)

select * from final
