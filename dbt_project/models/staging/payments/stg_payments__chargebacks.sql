with

source as (

    select * from {{ source('payments', 'chargebacks') }}

),

renamed as (

    select

        ---------- ids
        chargeback_id,
        transaction_id,

        ---------- strings
        reason_code,

        ---------- numerics
        amount,

        ---------- timestamps
        reported_at,
        cast(reported_at as date) as reported_date,

        ---------- ingestion metadata
        _loaded_at as loaded_at

    from source

)

select * from renamed
