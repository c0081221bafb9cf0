with

source as (

    select * from {{ source('payments', 'transactions') }}

),

renamed as (

    select

        ---------- ids
        transaction_id,
        customer_id,
        merchant_id,

        ---------- strings
        channel,
        region_code,
        currency,

        ---------- numerics
        amount,

        ---------- timestamps
        transacted_at,
        cast(transacted_at as date) as transaction_date,

        ---------- ingestion metadata
        _loaded_at as loaded_at

    from source

)

select * from renamed
