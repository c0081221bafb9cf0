"""`headwater simulate`: its options and what it prints."""

from pathlib import Path

from headwater.simulation.config import SimulationConfig


def add_arguments(parser) -> None:
    """`headwater simulate`'s options; defaults are SimulationConfig's."""
    defaults = SimulationConfig()
    parser.add_argument("--home", type=Path, default=None, help="state folder (recreated)")
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--history-days", type=int, default=defaults.history_days)
    parser.add_argument("--transactions-per-day", type=int, default=defaults.transactions_per_day)
    parser.add_argument("--no-drift", action="store_true", help="play the world without drift")
    parser.add_argument("--drift-on-day", type=int, default=defaults.drift_on_day)
    parser.add_argument("--maturity-days", type=int, default=defaults.maturity_days)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")


def run_from_arguments(args) -> int:
    from headwater.simulation.report import render, to_json
    from headwater.simulation.run import simulate
    from headwater_core.config import state_dir

    config = SimulationConfig(
        days=args.days,
        history_days=args.history_days,
        transactions_per_day=args.transactions_per_day,
        drift=not args.no_drift,
        drift_on_day=args.drift_on_day,
        maturity_days=args.maturity_days,
        seed=args.seed,
        model=args.model,
    )
    home = (args.home or state_dir() / "simulation").resolve()
    print(f"headwater simulate: {config}\nstate in {home}\n", flush=True)
    result = simulate(home, config, echo=lambda line: print(line, flush=True))
    print(f"\n{render(result)}")
    if args.json:
        args.json.write_text(to_json(result))
    return 0
