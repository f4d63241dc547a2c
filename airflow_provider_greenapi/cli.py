"""``airflow greenapi usage``: the month's GREEN-API usage per instance, from a warehouse's usage ledger.

Registered through ``get_provider_info()["cli"]`` (Airflow 3.2+ reads it). Airflow 2.11 to 3.1 read no provider
commands: there the ``greenapi`` console script (``greenapi usage ...``, or ``python -m
airflow_provider_greenapi.cli usage ...``) runs the same command with the same arguments (see docs/quota.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

_ARGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("warehouse_conn_id",), {"help": "the warehouse connection whose usage ledger to read (the operator's "
                                      "destination_conn_id)"}),
    (("--greenapi-conn-id",), {"help": "a GREEN-API connection: its instance only, with its monthly_quota "
                                       "(the token is never read out); repeat it for several connections",
                                "action": "append", "default": None}),
    (("--month",), {"help": "the UTC month, YYYY-MM (default: this month)", "default": None}),
    (("--output", "-o"), {"help": "table (default) or json", "choices": ["table", "json"], "default": "table"}),
    (("--runs",), {"help": "how many of the last runs to list per instance (default 10)", "type": int,
                   "default": 10}),
    (("--usage-table",), {"help": "the usage ledger's table (the operator's usage_table)", "default": None}),
    (("--history-table",), {"help": "the usage history's table (the operator's usage_history_table)",
                            "default": None}),
]


def get_cli_commands() -> list[Any]:
    """The provider's commands, for Airflow's CLI parser (``get_provider_info()["cli"]``)."""
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

    usage = ActionCommand(
        name="usage",
        help="This month's checkWhatsapp calls per instance, the quota, what is left, checks per day and the runs",
        func=lazy_load_command("airflow_provider_greenapi.cli.usage_command"),
        args=tuple(Arg(flags, **options) for flags, options in _ARGS),
    )
    return [GroupCommand(name="greenapi", help="GREEN-API provider commands", subcommands=(usage,))]


def _read_connections_like_airflows_cli() -> None:
    """Look connections up where ``airflow connections get`` does: the configured secrets backends, then
    Airflow's metadata database (where ``airflow connections add`` and the UI store them).

    Outside a task, Airflow 3.x's SDK picks its connection backends from ``_AIRFLOW_PROCESS_CONTEXT``: unset
    (a CLI process), it reads only AIRFLOW_CONN_* variables and custom backends, never the metadata database.
    Airflow's own CLI commands that read connections (``connections get``, ``connections test``) declare
    themselves a server process the same way (airflow/cli/commands/connection_command.py)."""
    os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "server"


def usage_command(args: argparse.Namespace) -> None:
    """Print the report; a bad argument or connection exits with the reason (never a traceback)."""
    from airflow_provider_greenapi.usage_report import describe, greenapi_quotas, month_usage, parse_month
    from airflow_provider_greenapi.warehouse import DEFAULT_USAGE_TABLE
    from airflow_provider_greenapi.warehouse.usage_history import DEFAULT_HISTORY_TABLE

    _read_connections_like_airflows_cli()
    try:
        month = parse_month(args.month)
        connections = greenapi_quotas(args.greenapi_conn_id or [])
        reports = month_usage(args.warehouse_conn_id, month, connections,
                              only_configured=bool(connections.quotas),
                              usage_table=args.usage_table or DEFAULT_USAGE_TABLE,
                              history_table=args.history_table or DEFAULT_HISTORY_TABLE)
    except Exception as error:
        raise SystemExit(f"airflow greenapi usage: {error}") from None
    if args.output == "json":
        print(json.dumps({"month": month, "instances": [r.to_dict(args.runs) for r in reports],
                          "connection_errors": connections.errors}, indent=2))
    else:
        print(describe(reports, month, args.runs, connections.errors))
    if connections.errors:  # the report shows everything else; the exit status says a connection was unusable
        for line in connections.errors:
            print(f"airflow greenapi usage: {line}", file=sys.stderr)
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    """``greenapi usage ...``, the console script (and ``python -m airflow_provider_greenapi.cli usage ...``): the
    same command on every Airflow line, for 2.11 to 3.1, which load no provider CLI."""
    # Airflow logs to stdout (3.0: its plugins at INFO, its provider manager's own conn-type clashes at WARNING);
    # here the report is the output, maybe piped into a JSON reader: only Airflow's errors may join it.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    parser = argparse.ArgumentParser(prog="greenapi")
    commands = parser.add_subparsers(dest="command", required=True)
    usage = commands.add_parser("usage", help="the month's GREEN-API usage per instance")
    for flags, options in _ARGS:
        usage.add_argument(*flags, **options)
    usage_command(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
