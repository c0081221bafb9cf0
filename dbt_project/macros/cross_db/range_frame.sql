{#-
  A window's ORDER BY and RANGE frame over a date or timestamp column, offsets written once:

      count(*) over (
          partition by customer_id
          {{ range_frame('transacted_at', '-24 hours', '-1 microsecond') }}
      )

  Each bound is 'unbounded', 'current', '-N unit' (N units preceding) or '+N unit' (following);
  unit is microsecond, second, minute, hour or day (singular or plural).

  DuckDB (default__) orders by the column and uses interval offsets, as written by hand. Spark SQL
  refuses a frame whose two bounds are intervals of different types (hours vs microseconds), so
  spark__ orders by the column's microseconds since the epoch (UTC: the profile sets the session
  time zone) and counts the offsets in microseconds: the same rows fall in every frame.
-#}
{% macro range_frame(order_column, start, end) -%}
    {{ return(adapter.dispatch('range_frame')(order_column, start, end)) }}
{%- endmacro %}

{% macro default__range_frame(order_column, start, end) -%}
    order by {{ order_column }}
    range between {{ _range_frame_bound(start, 'preceding') }}
        and {{ _range_frame_bound(end, 'following') }}
{%- endmacro %}

{% macro spark__range_frame(order_column, start, end) -%}
    order by unix_micros(cast({{ order_column }} as timestamp))
    range between {{ _range_frame_bound(start, 'preceding', in_micros=true) }}
        and {{ _range_frame_bound(end, 'following', in_micros=true) }}
{%- endmacro %}


{#- One bound as SQL: an interval offset, or a number of microseconds with in_micros. -#}
{% macro _range_frame_bound(bound, unbounded_side, in_micros=false) -%}
    {%- set text = bound | string | trim -%}
    {%- if text == 'unbounded' -%}
        {{- 'unbounded ' ~ unbounded_side -}}
    {%- elif text in ('current', '0') -%}
        {{- 'current row' -}}
    {%- else -%}
        {%- set match = modules.re.fullmatch('([+-]) *([0-9]+) +(microsecond|second|minute|hour|day)s?', text) -%}
        {%- if not match -%}
            {{ exceptions.raise_compiler_error(
                "range_frame: a bound is 'unbounded', 'current', '-N unit' or '+N unit' "
                ~ "(unit: microsecond, second, minute, hour, day), got '" ~ text ~ "'"
            ) }}
        {%- endif -%}
        {%- set side = 'preceding' if match.group(1) == '-' else 'following' -%}
        {%- set count = match.group(2) | int -%}
        {%- set unit = match.group(3) -%}
        {%- if in_micros -%}
            {%- set micros = {'microsecond': 1, 'second': 1000000, 'minute': 60000000,
                              'hour': 3600000000, 'day': 86400000000} -%}
            {{- (count * micros[unit]) ~ ' ' ~ side -}}
        {%- else -%}
            {{- 'interval ' ~ count ~ ' ' ~ unit ~ ('s' if count != 1 else '') ~ ' ' ~ side -}}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
