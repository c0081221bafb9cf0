with

merchants as (

    select * from {{ ref('stg_acquirer__merchants') }}

),

final as (

    select
        merchant_id,
        merchant_name,
        category,
        region_code,
        risk_tier,
        onboarded_at,
        onboarded_date

    from merchants

)

select * from final
