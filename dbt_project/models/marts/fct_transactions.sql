{#-
  Daily incremental: each run replaces the days of its partition window (macros/partition_window.sql).
  Customer and merchant attributes are the dims' values when the day was built. Chargeback labels
  are deliberately not here (they arrive up to 60 days later and would go stale): join
  fct_chargebacks on transaction_id.
-#}

{{
    config(
        materialized='incremental',
        incremental_strategy=partition_window_strategy(),
        partition_by=partition_window_partition_by('transaction_date'),
        on_schema_change='fail',
        tags=['daily'],
        meta={'headwater': {'partition_column': 'transaction_date'}},
        pre_hook="{{ delete_partition_window('transaction_date') }}",
    )
}}

with

transactions as (

    select * from {{ ref('stg_payments__transactions') }}
    where {{ partition_window_filter('transaction_date') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

merchants as (

    select * from {{ ref('dim_merchants') }}

),

joined as (

    select
        transactions.transaction_id,
        transactions.customer_id,
        transactions.merchant_id,

        transactions.amount,
        transactions.channel,
        transactions.region_code,
        transactions.transacted_at,
        transactions.transaction_date,
        cast(extract(hour from transactions.transacted_at) as integer) as hour_of_day,

        customers.segment as customer_segment,
        customers.home_region as customer_home_region,
        merchants.category as merchant_category,
        merchants.risk_tier as merchant_risk_tier

    from transactions

    left join customers
        on transactions.customer_id = customers.customer_id

    left join merchants
        on transactions.merchant_id = merchants.merchant_id

),

final as (

    select
        transaction_id,
        customer_id,
        merchant_id,

        amount,
        channel,
        region_code,
        transacted_at,
        transaction_date,
        hour_of_day,

        customer_segment,
        customer_home_region,
        merchant_category,
        merchant_risk_tier,

        -- null, not false, when the customer is unknown
        region_code = customer_home_region as is_home_region,
        hour_of_day < 6 as is_night

    from joined

)

select * from final
