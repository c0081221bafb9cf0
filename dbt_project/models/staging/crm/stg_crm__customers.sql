with

source as (

    select * from {{ source('crm', 'customers') }}

),

renamed as (

    select

        ---------- ids
        customer_id,

        ---------- strings
        home_region,
        segment,

        ---------- numerics
        birth_year,

        ---------- timestamps
        signed_up_at,
        cast(signed_up_at as date) as signed_up_date,

        ---------- ingestion metadata
        _loaded_at as loaded_at

    from source

)

select * from renamed
