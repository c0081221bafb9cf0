"""A `headwater` command that fails prints one line and exits non-zero: the user's mistakes
(a date, a range outside the partitions, a selection, a spec, a model name) as
`headwater <command>: <message>`; anything unexpected as one line naming the log file that holds
its traceback."""

from pathlib import Path

import pytest

from headwater.cli import main
from headwater.errors import UserError, run_command
from headwater.headless import partition_range
from headwater.verbs import parse_selection
from headwater_core.partitions import partitions_def
from ml_assets.models.spec import SpecError


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    return tmp_path


def _fails(capsys, raise_it) -> str:
    def run() -> int:
        raise_it()
        return 0

    assert run_command("verb", run) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.strip()


def test_a_mistake_of_the_user_is_its_message_on_one_line(state, capsys):
    def mistake():
        raise UserError("--start 2024-12-01 is outside the partitions,\nwhich run from ...")

    said = _fails(capsys, mistake)
    assert (
        said == "headwater verb: --start 2024-12-01 is outside the partitions, which run from ..."
    )
    assert not (state / "logs").exists()


def test_a_spec_that_cannot_be_read_is_a_mistake_too(state, capsys):
    def bad_spec():
        raise SpecError("model_specs/x.yml: split.test.end '2025-02-30' is not a date")

    assert _fails(capsys, bad_spec) == (
        "headwater verb: model_specs/x.yml: split.test.end '2025-02-30' is not a date"
    )


def test_a_refusal_raised_as_system_exit_gets_the_command_name(state, capsys):
    def refusal():
        raise SystemExit("unknown model 'x'; known: ['fraud_classifier']")

    assert (
        _fails(capsys, refusal) == "headwater verb: unknown model 'x'; known: ['fraud_classifier']"
    )


def test_an_unexpected_error_is_one_line_and_its_traceback_is_in_the_state_folder(state, capsys):
    def fault():
        {}["missing"]

    said = _fails(capsys, fault)
    assert said.startswith("headwater verb: unexpected KeyError: 'missing' (traceback in ")
    log = Path(said.removesuffix(")").split("(traceback in ")[1])
    assert log.parent == state / "logs"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in fault" in text


def test_an_argument_that_is_not_a_date_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["monitor", "--start", "2025-13-01", "--end", "2025-01-02"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        "headwater monitor: argument --start: '2025-13-01' is not a date (YYYY-MM-DD)"
    )


def test_an_unknown_model_is_one_line(state, capsys):
    assert main(["monitor", "--start", "2025-01-01", "--end", "2025-01-02", "--model", "x"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "headwater monitor: no model spec named 'x'; known: ['customer_spend_30d', "
        "'fraud_classifier']\n"
    )


def test_a_range_is_the_partition_keys_between_its_bounds():
    assert partition_range("2025-01-30", "2025-02-02") == [
        "2025-01-30",
        "2025-01-31",
        "2025-02-01",
        "2025-02-02",
    ]


@pytest.mark.parametrize(
    ("start", "end", "said"),
    [
        ("2024-12-01", "2025-01-03", "2024-12-01 is before the first partition 2025-01-01 "),
        ("2025-01-01", "2999-01-01", "2999-01-01 is after the last partition "),
        ("2025-02-01", "2025-01-03", "the range ends (2025-01-03) before it starts (2025-02-01)"),
        ("2025-01-01", "yesterday", "--end 'yesterday' is not a date (YYYY-MM-DD)"),
        ("2025-01-01", None, "give both --start and --end"),
    ],
)
def test_a_range_that_is_not_one_is_refused_saying_why(start, end, said):
    with pytest.raises(UserError) as refused:
        partition_range(start, end)
    assert str(refused.value).startswith(said)
    if "partition " in said:  # the message names the setting that bounds the partitions
        assert "vars.headwater.partitions" in str(refused.value) or "last complete" in str(
            refused.value
        )
        assert partitions_def().get_first_partition_key() == "2025-01-01"


def test_a_selection_that_does_not_parse_is_refused_naming_it():
    with pytest.raises(UserError, match=r"--select 'key:raw/\*\+\(': "):
        parse_selection("key:raw/*+(")
    assert parse_selection("group:marts or key:raw/*+") is not None
