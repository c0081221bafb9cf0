"""A test ingestion cannot enforce stops the data code location from loading, in one line naming
the source, table, column and test (issue 14, item 4): the raw assets are built from the
contract, so no run can load a table while one of its declared rules would be skipped."""

import os
import subprocess
import sys

from tests.conftest import copy_project


def test_an_unknown_source_test_stops_the_code_location_naming_it(tmp_path):
    copy_project(tmp_path)
    yml = tmp_path / "dbt_project" / "models" / "staging" / "payments" / "_payments__sources.yml"
    text = yml.read_text()
    declared = "              - accepted_range:\n                  arguments: {min_value: 0}\n"
    assert declared in text
    yml.write_text(text.replace(declared, declared + "              - is_positive\n", 1))
    out = subprocess.run(
        # The location builds its definitions when Dagster loads it (`defs`), not at import.
        [sys.executable, "-W", "ignore", "-c", "from data_platform.definitions import defs"],
        env={**os.environ, "PYTHONPATH": f"{tmp_path / 'platform'}:{tmp_path}"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last == (
        f"data_platform.raw.contract_rules.ContractError: {yml}: source payments.transactions, "
        "column amount: test 'is_positive' cannot be enforced at ingestion: ingestion knows "
        "only ['not_null', 'unique', 'accepted_values', 'relationships', 'accepted_range', "
        "'expression_is_true', 'unique_combination_of_columns']"
    )
