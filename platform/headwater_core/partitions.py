"""The time partitions of landed data, shared by both code locations."""

import dagster as dg

# Day partitions of landed data. The first day is fixed so that partition keys never move;
# the last partition is yesterday (a day's file lands after the day is over).
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2025-01-01")
