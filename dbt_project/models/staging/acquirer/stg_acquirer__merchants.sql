with

source as (

    select * from {{ source('acquirer', 'merchants') }}

),

renamed as (

    select

        ---------- ids
        merchant_id,

        ---------- strings
        merchant_name,
        category,
        region_code,
        risk_tier,

        ---------- timestamps
        onboarded_at,
        cast(onboarded_at as date) as onboarded_date,

        ---------- ingestion metadata
        _loaded_at as loaded_at

    from source

)

select * from renamed
