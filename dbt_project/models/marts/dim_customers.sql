with

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

final as (

    select
        customer_id,
        home_region,
        segment,
        birth_year,
        signed_up_at,
        signed_up_date

    from customers

)

select * from final
