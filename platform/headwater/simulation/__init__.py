"""The loop, played day by day through the real automation in one process (`headwater simulate`).

Each simulated day: the generator's files for the day land in the landing folder; at 00:15 the
next morning (Dagster's clock frozen there) the landing sensor is evaluated, the freshness
daemon's own code re-evaluates freshness policies, declarative automation is evaluated
(`evaluate_automation_conditions`, the daemon's logic) and the monitor sensor ticks; every run
they ask for executes in process against a real instance in `<home>/dagster_home`, with the real
warehouse, MLflow store and reports under `<home>`. Ticks repeat until nobody asks for more.

Before day 0 the history is materialised in one range run and the first champion trained, as a
user's first backfill would. The world's chargebacks arrive within `maturity_days - 1` days (and
dbt reads HEADWATER_LABEL_MATURITY_DAYS), so labels mature inside a month-long simulation.

    config.py             SimulationConfig: the world and the schedule of one simulation
    world.py              the state folder, the generated world, and landing its days
    loop.py               Loop: both locations' assets, one instance, the sensors and automation
                          ticked and what they ask for executed
    explain.py            what a tick did and why, in words (roles, reasons, the gate's verdict)
    report.py             a day's row, what retraining bought, the table and the JSON
    run.py                `simulate`: the history backfill, then day after day
    cli.py                `headwater simulate`'s options

Dagster's clock is frozen and freshness evaluated through `headwater.dagster_internals`, the one
module that uses Dagster internals, pinned to one Dagster version.
"""
