"""The bike-sharing dataset (`<repo>/../shared/data/bike_sharing/hour.csv`) as a raw source for
tests: its contract, written into a tmp dbt project, and its lines day by day."""

from __future__ import annotations

from pathlib import Path

import yaml

from data_platform.raw.contract import SourceContract, load_contracts
from headwater_core.config import PROJECT_ROOT

HOUR_CSV = PROJECT_ROOT.parent / "shared" / "data" / "bike_sharing" / "hour.csv"


def _range(low: float, high: float | None = None) -> dict:
    bounds = {"min_value": low} if high is None else {"min_value": low, "max_value": high}
    return {"accepted_range": {"arguments": bounds}}


def _column(name: str, data_type: str, *tests) -> dict:
    return {"name": name, "data_type": data_type, "data_tests": ["not_null", *tests]}


COLUMNS = [
    _column("instant", "integer", "unique"),
    _column("dteday", "date"),
    _column("season", "integer", {"accepted_values": {"arguments": {"values": [1, 2, 3, 4]}}}),
    _column("yr", "integer", _range(0, 1)),
    _column("mnth", "integer", _range(1, 12)),
    _column("hr", "integer", _range(0, 23)),
    _column("holiday", "integer", _range(0, 1)),
    _column("weekday", "integer", _range(0, 6)),
    _column("workingday", "integer", _range(0, 1)),
    _column("weathersit", "integer", _range(1, 4)),
    *(_column(name, "double", _range(0, 1)) for name in ("temp", "atemp", "hum", "windspeed")),
    _column("casual", "integer", _range(0)),
    _column("registered", "integer", _range(0)),
    _column("cnt", "integer", {"expression_is_true": {"arguments": {"expression": ">= 0"}}}),
]


def bike_contract(
    project: Path, file: dict | None = None, columns: list[dict] | None = None, **table
) -> SourceContract:
    """The `bike.rentals` contract (one file per day, rows placed by `dteday`), declared in a
    sources yml under `project`, with `file` as its `meta.headwater.file`."""
    headwater = {
        "landing_pattern": "rentals/rentals_{date}.*",
        "partitioned_by": "dteday",
        "max_rejected_share": 0.5,
        **({"file": file} if file else {}),
    }
    rentals = {
        "name": "rentals",
        "config": {"meta": {"headwater": headwater}},
        "data_tests": [
            {"expression_is_true": {"arguments": {"expression": "casual + registered = cnt"}}}
        ],
        "columns": columns or COLUMNS,
        **table,
    }
    yml = project / "models" / "staging" / "bike" / "_bike__sources.yml"
    yml.parent.mkdir(parents=True, exist_ok=True)
    yml.write_text(
        yaml.safe_dump(
            {"version": 2, "sources": [{"name": "bike", "schema": "raw", "tables": [rentals]}]}
        )
    )
    return load_contracts(project)["rentals"]


def hour_lines(day: str) -> tuple[str, list[str]]:
    """(header, the day's data lines) of hour.csv, as delivered (LF, no line ending)."""
    header, *lines = HOUR_CSV.read_text().splitlines()
    return header, [line for line in lines if line.split(",")[1] == day]
