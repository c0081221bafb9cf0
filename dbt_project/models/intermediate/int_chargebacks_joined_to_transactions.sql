{#-
  Each chargeback with the transaction it disputes. Left join: a chargeback is kept even when its
  transaction is not in raw (it predates the first loaded day); its transaction columns are then
  null. Transactions come from staging (all loaded days), not from fct_transactions, so a
  chargeback never depends on which fct_transactions partitions have been built.
-#}

with

chargebacks as (

    select * from {{ ref('stg_payments__chargebacks') }}

),

transactions as (

    select * from {{ ref('stg_payments__transactions') }}

),

joined as (

    select

        chargebacks.chargeback_id,
        chargebacks.transaction_id,
        transactions.customer_id,
        transactions.merchant_id,

        chargebacks.reason_code,
        chargebacks.amount,
        transactions.amount as transaction_amount,

        chargebacks.reported_at,
        chargebacks.reported_date,
        transactions.transacted_at,
        transactions.transaction_date,

        {{ date_difference('day', 'transactions.transaction_date', 'chargebacks.reported_date') }}
            as days_to_report

    from chargebacks

    left join transactions
        on chargebacks.transaction_id = transactions.transaction_id

)

select * from joined
