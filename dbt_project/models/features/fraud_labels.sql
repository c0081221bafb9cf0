{#-
  The fraud model's label per transaction, with the two timestamps a training job needs to use it
  without looking into the future: when the label became known (chargeback_reported_at) and when
  it can no longer change (label_matures_at).

  Maturity is calendar-day based, like the processor's promise: a chargeback arrives at most 60
  calendar days after its transaction's date, at any time of that day, so the label is final at
  midnight ending day transaction_date + 60 (transaction_date + 61 days, 00:00). transacted_at +
  60 days would be too early for a transaction made before the chargeback's time of day.
  The 61 days come from macros/label_maturity_days.sql.

  Incremental (macros/feature_window.sql): a run rewrites the transactions of its window and
  every older one whose label no longer matches fct_chargebacks, a chargeback arrived, corrected
  or taken back on any day (fraud_label_rows_filter), replaced by transaction_id; the pre_hook
  deletes the window's rows first, so a transaction taken out of its day goes too (Spark: see
  the macro). A day's tests read the window's rows: the older rows a run relabels are replaced
  by key, so they cannot duplicate one.
-#}

{{
    config(
        materialized='incremental',
        incremental_strategy=fraud_label_strategy(),
        unique_key='transaction_id',
        on_schema_change='fail',
        meta={'headwater': {'partition_column': 'transaction_date'}},
        pre_hook="{{ delete_rows(fraud_label_deleted_rows()) }}",
    )
}}

with

transactions as (

    select * from {{ ref('fct_transactions') }}
    where {{ fraud_label_rows_filter() }}

),

chargebacks as (

    select * from {{ ref('fct_chargebacks') }}
    where transaction_id in (select transaction_id from transactions)

),

first_chargebacks as (

    select
        transaction_id,
        min(reported_at) as first_reported_at

    from chargebacks

    group by 1

),

final as (

    select
        transactions.transaction_id,
        transactions.transacted_at,
        transactions.transaction_date,

        first_chargebacks.transaction_id is not null as is_fraud,
        first_chargebacks.first_reported_at as chargeback_reported_at,
        cast(transactions.transaction_date + interval {{ label_maturity_days() }} days as timestamp)
            as label_matures_at

    from transactions

    left join first_chargebacks
        on transactions.transaction_id = first_chargebacks.transaction_id

)

select * from final
