{#-
  The demand model's features: one row per hour of fct_hourly_rentals, with the calendar and
  weather of the hour and the demand of earlier days only (point-in-time correct).

  Every lag is looked up by time, not by row offset, because hours without rentals have no row:
  the same hour 1 and 7 days before, the whole previous day, and the same hour of the week over
  the 4 weeks before (its median rentals are the threshold the label compares this hour with).
  The label is relative to those weeks, so the features that carry most are relative too: this
  hour's weather and calendar against those weeks' (`*_vs_4w`), and the previous day against
  the 28 days before it. Nothing of the hour's own day but its weather and calendar is read.
-#}

{{ config(materialized='table') }}

with

rentals as (

    select * from {{ ref('fct_hourly_rentals') }}

),

daily_totals as (

    select
        rental_date,
        sum(total_rentals) as day_rentals

    from rentals

    group by 1

),

daily_trend as (

    select
        rental_date,
        day_rentals,
        avg(day_rentals) over (
            order by rental_date
            range between interval 28 days preceding and interval 1 day preceding
        ) as avg_day_rentals_28d_before

    from daily_totals

),

-- the same hour of the week in each of the 4 weeks before: at most 4 rows per hour
same_hour_4w as (

    select
        rentals.rental_hour_id,
        median(earlier.total_rentals) as median_rentals_same_hour_4w,
        count(*) as weeks_observed_4w,
        avg(earlier.temperature_norm) as avg_temperature_norm_4w,
        avg(earlier.humidity_norm) as avg_humidity_norm_4w,
        avg(earlier.weather_situation) as avg_weather_situation_4w,
        avg(cast(earlier.is_working_day as integer)) as share_working_days_4w

    from rentals

    inner join rentals as earlier
        on earlier.hour_of_week = rentals.hour_of_week
        and earlier.rented_at >= rentals.rented_at - interval 28 days
        and earlier.rented_at < rentals.rented_at

    group by 1

),

final as (

    select
        rentals.rental_hour_id,
        rentals.rented_at,
        rentals.rental_date,

        rentals.hour_of_day,
        rentals.day_of_week,
        rentals.hour_of_week,
        rentals.month_of_year,
        rentals.season,
        rentals.is_holiday,
        rentals.is_working_day,

        rentals.weather_situation,
        rentals.temperature_norm,
        rentals.feels_like_temperature_norm,
        rentals.humidity_norm,
        rentals.wind_speed_norm,

        one_day_before.total_rentals as rentals_same_hour_1d_before,
        one_week_before.total_rentals as rentals_same_hour_7d_before,
        previous_day.day_rentals as rentals_previous_day,
        same_hour_4w.median_rentals_same_hour_4w,
        coalesce(same_hour_4w.weeks_observed_4w, 0) as weeks_observed_4w,
        cast(one_day_before.total_rentals as double)
            / nullif(same_hour_4w.median_rentals_same_hour_4w, 0) as demand_ratio_1d,
        cast(previous_day.day_rentals as double)
            / nullif(previous_day.avg_day_rentals_28d_before, 0) as previous_day_vs_28d,

        rentals.temperature_norm - same_hour_4w.avg_temperature_norm_4w as temperature_vs_4w,
        rentals.humidity_norm - same_hour_4w.avg_humidity_norm_4w as humidity_vs_4w,
        rentals.weather_situation - same_hour_4w.avg_weather_situation_4w as weather_vs_4w,
        cast(rentals.is_working_day as integer) - same_hour_4w.share_working_days_4w
            as working_day_vs_4w

    from rentals

    left join rentals as one_day_before
        on one_day_before.rented_at = rentals.rented_at - interval 1 day

    left join rentals as one_week_before
        on one_week_before.rented_at = rentals.rented_at - interval 7 days

    left join daily_trend as previous_day
        on previous_day.rental_date = rentals.rental_date - interval 1 day

    left join same_hour_4w
        on same_hour_4w.rental_hour_id = rentals.rental_hour_id

)

select * from final
