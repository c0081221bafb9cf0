{#-
  Daily incremental: each run replaces the days of its partition window (macros/partition_window.sql).
  One row per hour with at least one rental; an hour with none has no row (the operator's file
  leaves it out), so readers that need every hour must not count rows per day.
-#}

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        tags=['daily'],
        meta={'headwater': {'partition_column': 'rental_date'}},
        pre_hook="{{ delete_partition_window('rental_date') }}",
    )
}}

with

rentals as (

    select * from {{ ref('stg_bike_sharing__rentals') }}
    where {{ partition_window_filter('rental_date') }}

),

final as (

    select
        rental_hour_id,
        rented_at,
        rental_date,

        hour_of_day,
        day_of_week,
        -- Monday 00:00 = 0 .. Sunday 23:00 = 167: the weekly cycle in one number
        ((day_of_week + 6) % 7) * 24 + hour_of_day as hour_of_week,
        month_of_year,
        season,
        is_holiday,
        is_working_day,

        weather_situation,
        temperature_norm,
        feels_like_temperature_norm,
        humidity_norm,
        wind_speed_norm,

        casual_rentals,
        registered_rentals,
        total_rentals

    from rentals

)

select * from final
