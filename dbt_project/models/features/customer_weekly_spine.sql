{#-
  The grain of the customer spend model: one row per customer and as_of_date, shared by
  customer_weekly_features and customer_spend_labels so both have exactly the same rows.

  as_of_date is every Monday from the first Monday on or after (first transaction date + 7 days),
  so the first row already has a week of history, through the last transaction date. A customer
  appears from the first Monday after signing up (signed_up_at < as_of_date, midnight).

  Incremental (macros/feature_window.sql): a run adds the Mondays of its window.
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

with

transactions as (

    select * from {{ ref('fct_transactions') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

transaction_range as (

    select
        -- date_trunc('week') is the ISO week's Monday: + 13 days -> first Monday >= first + 7 days
        cast(date_trunc('week', min(transaction_date) + interval 13 days) as date) as first_monday,
        max(transaction_date) as last_date

    from transactions

),

mondays as (

    {{ select_date_series('first_monday', 'last_date', 7, 'transaction_range', 'as_of_date') }}

),

final as (

    select
        customers.customer_id,
        mondays.as_of_date

    from customers

    inner join mondays
        on customers.signed_up_at < mondays.as_of_date

    where {{ partition_window_filter('mondays.as_of_date', model_column='as_of_date') }}

)

select * from final
