"""Metadata for people: the previews and row counts the Dagster UI shows on an asset.

No Dagster import (the benchmark floor uses the same previews): values are plain, and Dagster code
wraps a markdown preview in `dg.MetadataValue.md`.
"""

from __future__ import annotations

from typing import Any


def markdown_preview(columns: list[str], rows: list[tuple], limit: int = 5) -> str:
    """A small markdown table, the preview the Dagster UI shows in an asset's metadata."""

    def cell(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|")

    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "\n".join("| " + " | ".join(cell(v) for v in row) + " |" for row in rows[:limit])


def table_stats(
    con: Any, table: str, date_column: str | None = None, window: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Row count (and the partition's row count) plus a preview of a warehouse table, under
    `preview` as a markdown string."""
    (rows,) = con.execute(f"select count(*) from {table}").fetchone()
    # The `dagster/` keys are the ones the UI shows as row counts and plots over time.
    metadata: dict[str, Any] = {"dagster/row_count": rows, "dagster/table_name": table}
    where = ""
    if date_column and window:
        # a window is dates, or timestamps for hourly partitions
        where = (
            f" where {date_column} >= timestamp '{window[0]}' "
            f"and {date_column} < timestamp '{window[1]}'"
        )
        (in_window,) = con.execute(f"select count(*) from {table}{where}").fetchone()
        metadata["dagster/partition_row_count"] = in_window
    result = con.execute(f"select * from {table}{where} limit 5")
    columns = [d[0] for d in result.description]
    metadata["preview"] = markdown_preview(columns, result.fetchall())
    return metadata
