{#-
  The demand model's label: one row per hour whose threshold is known, true when the hour's
  rentals are above the median of the same hour of the week over the 4 weeks before
  (hourly_rental_features.median_rentals_same_hour_4w). Hours with fewer than 2 of those weeks
  observed have no label. The label is final once the hour is over (label_matures_at).
-#}

{{ config(materialized='table') }}

with

rentals as (

    select * from {{ ref('fct_hourly_rentals') }}

),

features as (

    select * from {{ ref('hourly_rental_features') }}

),

final as (

    select
        rentals.rental_hour_id,
        rentals.rented_at,
        rentals.rental_date,

        rentals.total_rentals,
        features.median_rentals_same_hour_4w,
        rentals.total_rentals > features.median_rentals_same_hour_4w as is_high_demand,
        rentals.rented_at + interval 1 hour as label_matures_at

    from rentals

    inner join features
        on rentals.rental_hour_id = features.rental_hour_id

    where features.weeks_observed_4w >= 2

)

select * from final
