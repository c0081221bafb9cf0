"""How a `headwater` command fails: one line on stderr and a non-zero exit, never a traceback.

A mistake in what was asked (a date, a range outside the partitions, an unknown selection or
model, a spec that cannot be read, an MLflow server that does not answer) is printed as
`headwater <command>: <message>`. Anything else is a fault of the platform: one line naming the
exception and the log file in the state folder that holds its full traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path


class UserError(Exception):
    """A mistake in what the command was asked to do; its message says what and how to fix it."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line (argparse prints the usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that are the user's to fix: their message is the whole story."""
    from ml_assets.models.spec import SpecError
    from ml_assets.models.tracking import MlflowUnreachable

    return (UserError, SpecError, MlflowUnreachable)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_command(command: str, run: Callable[[], int]) -> int:
    """Run one subcommand; failures become one line on stderr and exit status 1 (130 when
    interrupted)."""
    prefix = f"headwater {command}: "
    try:
        return run()
    except KeyboardInterrupt:
        print(f"{prefix}interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:
        if not isinstance(e.code, str):
            raise
        # a refusal raised with its message; some already name the command
        message = one_line(e.code)
        print(message if message.startswith("headwater") else prefix + message, file=sys.stderr)
        return 1
    except Exception as e:
        try:
            user_errors = _user_errors()
        except Exception:  # the ML code itself does not import: that is the fault to report
            user_errors = (UserError,)
        if isinstance(e, user_errors):
            print(prefix + one_line(e), file=sys.stderr)
            return 1
        log = write_traceback(command, e)
        print(
            f"{prefix}unexpected {type(e).__name__}: {one_line(e)[:300]} (traceback in {log})",
            file=sys.stderr,
        )
        return 1


def write_traceback(command: str, error: BaseException) -> Path:
    """The error's full traceback, written to `<state>/logs/headwater-<command>-<UTC time>.log`."""
    import tempfile

    from headwater_core.config import state_dir

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    text = "".join(traceback.format_exception(error))
    for folder in (state_dir() / "logs", Path(tempfile.gettempdir())):
        path = folder / f"headwater-{command}-{stamp}.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(f"headwater {command}\n{' '.join(sys.argv)}\n\n{text}")
            return path
        except OSError:
            continue
    return Path("(not written)")
