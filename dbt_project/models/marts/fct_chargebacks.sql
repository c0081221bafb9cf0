{#-
  Daily incremental on reported_date (the day the chargeback file was delivered): each run replaces
  the days of its partition window (macros/partition_window.sql). This is where fraud labels live:
  a transaction is fraud when it has a row here.
-#}

{{
    config(
        materialized='incremental',
        incremental_strategy=partition_window_strategy(),
        partition_by=partition_window_partition_by('reported_date'),
        on_schema_change='fail',
        tags=['daily'],
        meta={'headwater': {'partition_column': 'reported_date'}},
        pre_hook="{{ delete_partition_window('reported_date') }}",
    )
}}

with

chargebacks as (

    select * from {{ ref('int_chargebacks_joined_to_transactions') }}
    where {{ partition_window_filter('reported_date') }}

),

final as (

    select
        chargeback_id,
        transaction_id,
        customer_id,
        merchant_id,

        reason_code,
        amount,
        transaction_amount,

        reported_at,
        reported_date,
        transacted_at,
        transaction_date,
        days_to_report

    from chargebacks

)

select * from final
