{#-
  One row per merchant and day with at least one transaction. Daily incremental on activity_date
  with the same window rule as fct_transactions, so partition D here is built from partition D
  there. Transactions only: chargebacks arrive later and are counted from fct_chargebacks.
-#}

{{
    config(
        materialized='incremental',
        incremental_strategy=partition_window_strategy(),
        partition_by=partition_window_partition_by('activity_date'),
        on_schema_change='fail',
        tags=['daily'],
        meta={'headwater': {'partition_column': 'activity_date'}},
        pre_hook="{{ delete_partition_window('activity_date') }}",
    )
}}

with

transactions as (

    select * from {{ ref('fct_transactions') }}
    where {{ partition_window_filter('transaction_date', model_column='activity_date') }}

),

aggregated as (

    select
        merchant_id,
        transaction_date as activity_date,

        count(*) as transaction_count,
        count(distinct customer_id) as customer_count,
        sum(amount) as total_amount,
        count(case when channel = 'online' then 1 end) as online_transaction_count,
        count(case when is_night then 1 end) as night_transaction_count,
        count(case when not is_home_region then 1 end) as away_from_home_transaction_count

    from transactions

    group by 1, 2

),

final as (

    select
        merchant_id,
        activity_date,
        transaction_count,
        customer_count,
        total_amount,
        online_transaction_count,
        night_transaction_count,
        away_from_home_transaction_count

    from aggregated

)

select * from final
