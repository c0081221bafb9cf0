"""Command line: `python -m fraud_demo.generator --landing-dir DIR [options]`."""

from __future__ import annotations

import argparse
from datetime import date, timedelta

from fraud_demo.generator.config import DRIFT_SCENARIOS, DriftScenario, GeneratorConfig
from fraud_demo.generator.run import GenerationSummary, generate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options; defaults are GeneratorConfig's."""
    defaults = GeneratorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m fraud_demo.generator",
        description="Write deterministic card-payment fraud demo data into a landing folder.",
    )
    parser.add_argument("--landing-dir", required=True, help="folder to write the files into")
    parser.add_argument("--start-date", type=date.fromisoformat, default=defaults.start_date)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument(
        "--transactions", type=int, default=defaults.transactions, help="total over the window"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--customers", type=int, default=None, help="default: from the volume")
    parser.add_argument("--merchants", type=int, default=None, help="default: from customers")
    parser.add_argument("--fraud-rate", type=float, default=defaults.fraud_rate)
    parser.add_argument("--drift", choices=sorted(DRIFT_SCENARIOS), default=None)
    parser.add_argument(
        "--drift-start",
        type=date.fromisoformat,
        default=None,
        help="first day of the drift (default: the middle of the window)",
    )
    parser.add_argument("--bad-row-share", type=float, default=defaults.bad_row_share)
    parser.add_argument("--parquet-share", type=float, default=defaults.parquet_share)
    parser.add_argument(
        "--max-report-delay-days",
        type=int,
        default=defaults.max_report_delay_days,
        help="longest delay from a fraud to its chargeback (the labels' maturity)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> GeneratorConfig:
    """The GeneratorConfig the options describe."""
    drift = None
    if args.drift is not None:
        starts_on = args.drift_start or args.start_date + timedelta(days=args.days // 2)
        drift = DriftScenario(args.drift, starts_on)
    return GeneratorConfig(
        seed=args.seed,
        start_date=args.start_date,
        days=args.days,
        transactions=args.transactions,
        n_customers=args.customers,
        n_merchants=args.merchants,
        fraud_rate=args.fraud_rate,
        drift=drift,
        bad_row_share=args.bad_row_share,
        parquet_share=args.parquet_share,
        max_report_delay_days=args.max_report_delay_days,
    )


def format_summary(summary: GenerationSummary) -> str:
    """A few lines for the terminal."""
    files = ", ".join(f"{kind} {count}" for kind, count in summary.files_written.items())
    return "\n".join(
        [
            f"landing dir:  {summary.landing_dir}",
            f"files:        {files}",
            f"transactions: {summary.transactions:,} ({summary.bad_rows:,} bad rows)",
            f"fraud:        {summary.frauds:,} ({summary.fraud_share:.2%})",
            (
                f"chargebacks:  {summary.chargebacks_written:,} written, "
                f"{summary.chargebacks_pending:,} still to arrive"
            ),
            f"elapsed:      {summary.elapsed_seconds:.1f} s",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Generate and print the summary."""
    args = parse_args(argv)
    summary = generate(config_from_args(args), args.landing_dir, progress=not args.no_progress)
    print(format_summary(summary))


if __name__ == "__main__":
    main()
