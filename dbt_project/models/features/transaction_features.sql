{#-
  Per-transaction features over the customer's and merchant's history, point-in-time correct:
  every window ends strictly before the transaction's own timestamp (`1 microsecond preceding`),
  so a row never sees itself, a later row, or a row at the same instant.
  Owned by the ML code location; analysts edit it like any other model.
-#}

{{ config(materialized='table') }}

with

transactions as (

    select * from {{ ref('fct_transactions') }}

),

customer_history as (

    select
        transaction_id,

        count(*) over customer_1h as customer_txn_count_1h,
        count(*) over customer_24h as customer_txn_count_24h,
        count(*) over customer_7d as customer_txn_count_7d,
        coalesce(sum(amount) over customer_24h, 0) as customer_amount_24h,
        avg(amount) over customer_30d as customer_avg_amount_30d,
        count(*) over merchant_24h as merchant_txn_count_24h

    from transactions
    window
        customer_1h as (
            partition by customer_id order by transacted_at
            range between interval 1 hour preceding and interval 1 microsecond preceding
        ),
        customer_24h as (
            partition by customer_id order by transacted_at
            range between interval 24 hours preceding and interval 1 microsecond preceding
        ),
        customer_7d as (
            partition by customer_id order by transacted_at
            range between interval 7 days preceding and interval 1 microsecond preceding
        ),
        customer_30d as (
            partition by customer_id order by transacted_at
            range between interval 30 days preceding and interval 1 microsecond preceding
        ),
        merchant_24h as (
            partition by merchant_id order by transacted_at
            range between interval 24 hours preceding and interval 1 microsecond preceding
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
        customer_history.merchant_txn_count_24h

    from transactions
    inner join customer_history
        on transactions.transaction_id = customer_history.transaction_id

)

select * from final
