"""``greenapi-emulator`` / ``python -m airflow_provider_greenapi.emulator``: run the emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from airflow_provider_greenapi.emulator.api_methods import API_METHODS
from airflow_provider_greenapi.emulator.config import (
    DEFAULT_PORT,
    ChatIdStyle,
    Contract,
    EmulatedInstance,
    EmulatorConfig,
)
from airflow_provider_greenapi.emulator.control import CONTROL_PREFIX
from airflow_provider_greenapi.emulator.faults import Fault, FaultPlan
from airflow_provider_greenapi.emulator.server import GreenApiEmulator


def build_parser() -> argparse.ArgumentParser:
    fault_names = ", ".join(fault.value for fault in Fault)
    parser = argparse.ArgumentParser(
        prog="greenapi-emulator",
        description="A local GREEN-API server (checkWhatsapp, getStateInstance, getSettings) for tests and "
        "demos. Flags override the --config file.",
    )
    net = parser.add_argument_group("network")
    net.add_argument("--host", help="address to bind (default 127.0.0.1; anything else is reachable from outside)")
    net.add_argument("--port", type=int, help=f"port to bind, 0 picks a free one (default {DEFAULT_PORT})")
    net.add_argument(
        "--ready-file",
        type=Path,
        metavar="PATH",
        help="write the base URL to PATH once connections are accepted (removed on exit)",
    )
    setup = parser.add_argument_group("instances and behaviour")
    setup.add_argument("--config", type=Path, metavar="FILE.json", help="JSON config file (see docs/emulator.md)")
    setup.add_argument(
        "--instance",
        action="append",
        default=[],
        metavar="ID:TOKEN[:PLAN[:STATE]]",
        help="serve this instance (repeatable); PLAN is developer, business or a monthly quota; "
        "default 1101000001:emulator-token-0001:developer:authorized",
    )
    setup.add_argument(
        "--legacy-digits",
        action="store_true",
        default=None,
        help="validate numbers as the older API: 11 or 12 digits",
    )
    setup.add_argument("--no-rate-limit", action="store_true", help="disable the per-instance rate limits")
    setup.add_argument("--retry-after", type=int, metavar="S", help="send Retry-After: S with rate-limit 429s")
    setup.add_argument(
        "--chat-id",
        choices=[style.value for style in ChatIdStyle],
        help="chatId in answers for existing numbers under the current contract (default lid)",
    )
    setup.add_argument(
        "--contract",
        choices=[contract.value for contract in Contract],
        help="checkWhatsapp contract: current (chatId or phoneNumber in, the LID in chatId out; the default) "
        "or legacy (an older host: phoneNumber only, a chatId is a 400, answers without chatId)",
    )
    setup.add_argument(
        "--numbers-file",
        type=Path,
        metavar="PATH",
        help="overrides of the exists rule, one NUMBER[,true|false] a line",
    )
    setup.add_argument(
        "--exists-share",
        type=float,
        metavar="0..1",
        help="share of numbers the hash rule says exist (default 0.7)",
    )
    setup.add_argument(
        "--us-extra-zeros",
        action="store_true",
        default=None,
        help="emulate the US/Canada quirk: 1 + extra zeros (12+ digits) answers true",
    )
    faults = parser.add_argument_group("fault injection (applies to every instance)")
    faults.add_argument("--latency", type=float, metavar="MS", help="fixed delay before each answer")
    faults.add_argument("--jitter", type=float, metavar="MS", help="extra uniform random delay 0..MS")
    faults.add_argument("--error-rate", type=float, metavar="0..1", help="share of calls answered with a fault")
    faults.add_argument("--errors", metavar="F,F", help=f"faults drawn at --error-rate; one of: {fault_names}")
    faults.add_argument("--fault-script", metavar="F,F", help="faults of the first calls, in order")
    faults.add_argument(
        "--fault-methods",
        metavar="M,M",
        help=f"methods faults apply to (default checkWhatsapp; of {', '.join(API_METHODS)})",
    )
    faults.add_argument("--hang", type=float, metavar="S", help="how long the 'hang' fault holds (default 5)")
    faults.add_argument("--seed", type=int, help="seed of the fault randomness (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no request log lines")
    return parser


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The config file (if any) with every given flag applied on top."""
    config = EmulatorConfig.from_file(args.config) if args.config else EmulatorConfig()
    if args.instance:
        config.instances = [EmulatedInstance.from_spec(spec) for spec in args.instance]
    if args.host is not None:
        config.host = args.host
    if args.port is not None:
        config.port = args.port
    if args.legacy_digits:
        config.legacy_digits = True
    if args.no_rate_limit:
        config.rate_limits = None
    elif args.retry_after is not None and config.rate_limits is not None:
        config.rate_limits = dataclasses.replace(config.rate_limits, retry_after_s=args.retry_after)
    if args.chat_id is not None:
        config.chat_id_style = args.chat_id
    if args.contract is not None:
        config.contract = args.contract
    numbers = config.numbers
    if args.exists_share is not None:
        numbers = dataclasses.replace(numbers, exists_share=args.exists_share)
    if args.us_extra_zeros:
        numbers = dataclasses.replace(numbers, us_extra_zeros=True)
    if args.numbers_file is not None:
        numbers = numbers.with_file(args.numbers_file)
    config.numbers = numbers
    plan = _fault_plan(args)
    if plan is not None:
        for instance in config.instances:
            instance.faults = plan
    config.validate()
    return config


def _fault_plan(args: argparse.Namespace) -> FaultPlan | None:
    fields: dict[str, object] = {}
    if args.latency is not None:
        fields["latency_ms"] = args.latency
    if args.jitter is not None:
        fields["jitter_ms"] = args.jitter
    if args.error_rate is not None:
        fields["error_rate"] = args.error_rate
    if args.errors is not None:
        fields["errors"] = _csv(args.errors)
    if args.fault_script is not None:
        fields["script"] = _csv(args.fault_script)
    if args.fault_methods is not None:
        fields["methods"] = _csv(args.fault_methods)
    if args.hang is not None:
        fields["hang_s"] = args.hang
    if args.seed is not None:
        fields["seed"] = args.seed
    return FaultPlan.from_dict(fields) if fields else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _banner(emulator: GreenApiEmulator) -> str:
    config = emulator.config
    lines = [f"GREEN-API emulator listening on {emulator.base_url}"]
    for instance in emulator.instances:
        plan = f"plan {instance.plan.value}, {instance.monthly_quota} checks a month"
        lines.append(f"  instance {instance.id_instance}: {plan}, state {instance.state.value}")
    limits = config.rate_limits
    if limits is None:
        lines.append("  rate limits: off")
    else:
        shown = ", ".join(f"{method} {limits.per_second(method):g}/s" for method in API_METHODS)
        lines.append(f"  rate limits per instance: {shown}")
    lines.append(f"  phone numbers: {'11 or 12 digits (legacy)' if config.legacy_digits else '11 to 16 digits'}")
    lines.append(f"  checkWhatsapp contract: {Contract.parse(config.contract).value}")
    lines.append(f"  control API: {emulator.base_url}{CONTROL_PREFIX}/instances")
    if emulator.instances:
        lines += [
            "",
            "Point Airflow at it (the password is the emulator's own fake token):",
            f"  export AIRFLOW_CONN_GREENAPI_DEFAULT='{emulator.airflow_connection()}'",
        ]
    lines += ["", "Press Ctrl-C to stop."]
    return "\n".join(lines)


def _write_ready_file(path: Path, base_url: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(base_url + "\n", encoding="utf-8")
    os.replace(partial, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until Ctrl-C or SIGTERM; 0 on a clean stop, 2 on a bad configuration."""
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (OSError, ValueError) as exc:
        print(f"greenapi-emulator: {exc}", file=sys.stderr)
        return 2
    config.log_requests = not args.quiet
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not is_loopback(config.host):
        print(
            f"WARNING: binding to {config.host} makes the emulator, its control API and its fake tokens "
            "reachable from other machines. Use --host 127.0.0.1 unless you need that.",
            file=sys.stderr,
            flush=True,
        )
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    emulator = GreenApiEmulator.from_config(config)
    try:
        emulator.start()
    except OSError as exc:
        print(f"greenapi-emulator: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(_banner(emulator), flush=True)
        if args.ready_file is not None:
            _write_ready_file(args.ready_file, emulator.base_url)
        while not stop_requested.wait(0.5):
            pass
    finally:
        emulator.stop()
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
    print("GREEN-API emulator stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
