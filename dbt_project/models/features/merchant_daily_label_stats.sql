{#-
  One row per merchant and day with at least one transaction: how many transactions the merchant
  had that day and how many of them were charged back. The input of transaction_features'
  matured merchant fraud rate, which only ever reads days at least 61 days old.

  A chargeback is counted by whether it exists, not by when it arrived. That is point-in-time
  safe for a reader of day D that looks at days <= D-61 only because the processor reports every
  chargeback within 60 calendar days (reported_date <= transaction_date + 60, so by D-1). A
  chargeback that breaks that promise is left out here, so it can never leak into a feature of a
  day before it arrived.

  Incremental (macros/feature_window.sql): a run rewrites the days of its window and the 60 days
  before it (fraud_label), whose chargebacked counts may have grown since they were written.
-#}

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        meta={'headwater': {'partition_column': 'transaction_date', 'rewrite_days': feature_lookback_days('fraud_label')}},
        pre_hook="{{ delete_rows(partition_window_filter(
            'transaction_date', lookback=feature_lookback_days('fraud_label'))) }}",
    )
}}

with

transactions as (

    select * from {{ ref('fct_transactions') }}
    where {{ partition_window_filter('transaction_date', lookback=feature_lookback_days('fraud_label')) }}

),

chargebacks as (

    select * from {{ ref('fct_chargebacks') }}
    where {{ partition_window_filter(
        'transaction_date',
        lookback=feature_lookback_days('fraud_label'),
        model_column='transaction_date'
    ) }}

),

-- transactions with at least one chargeback reported within 60 calendar days
chargebacked_transactions as (

    select distinct
        transactions.transaction_id

    from transactions

    inner join chargebacks
        on transactions.transaction_id = chargebacks.transaction_id

    where chargebacks.reported_date
        <= transactions.transaction_date + interval {{ label_maturity_days() - 1 }} days

),

aggregated as (

    select
        transactions.merchant_id,
        transactions.transaction_date,

        count(*) as transaction_count,
        count(chargebacked_transactions.transaction_id) as chargebacked_transaction_count

    from transactions

    left join chargebacked_transactions
        on transactions.transaction_id = chargebacked_transactions.transaction_id

    group by 1, 2

),

final as (

    select
        merchant_id,
        transaction_date,
        transaction_count,
        chargebacked_transaction_count

    from aggregated

)

select * from final
