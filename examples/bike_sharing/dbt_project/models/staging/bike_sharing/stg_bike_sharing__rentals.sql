with

source as (

    select * from {{ source('bike_sharing', 'rentals') }}

),

renamed as (

    select

        ---------- ids
        instant as rental_hour_id,

        ---------- calendar
        dteday as rental_date,
        hr as hour_of_day,
        weekday as day_of_week,
        mnth as month_of_year,
        season,
        holiday = 1 as is_holiday,
        workingday = 1 as is_working_day,

        ---------- weather
        weathersit as weather_situation,
        temp as temperature_norm,
        atemp as feels_like_temperature_norm,
        hum as humidity_norm,
        windspeed as wind_speed_norm,

        ---------- rentals
        casual as casual_rentals,
        registered as registered_rentals,
        cnt as total_rentals,

        ---------- timestamps
        cast(dteday as timestamp) + hr * interval 1 hour as rented_at,

        ---------- ingestion metadata
        _loaded_at as loaded_at

    from source

)

select * from renamed
