"""The ``dialer`` command: demo, serve, migrate, tenants and keys.

Every command's ``--help`` shows each option's default and the ``DIALER_`` environment variables the
command reads, with their defaults, taken from ``config.settings.Settings`` so they cannot drift.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from config.settings import Settings
from dialer.logs import setup_logging

T = TypeVar("T")

#: What ``dialer serve --role`` accepts (dialer/app.py builds each; kept here so the CLI stays light).
ROLES = ("all", "api", "scheduler", "gateway")
#: The settings every command reads: where the database is, and how to log.
_STORE_SETTINGS = ("database_url", "log_level", "log_format")
#: The settings ``dialer demo`` sets itself (dialer/demo.py ``demo_settings``): the environment's are ignored.
DEMO_OWN_SETTINGS = (
    "database_url",
    "redis_url",
    "http_host",
    "http_port",
    "sip_host",
    "sip_port",
    "sip_workers",
    "sip_rtp_port",
    "sip_rtp_ports_per_worker",
    "sip_transfer_lines",
    "dispatch_tick_seconds",
)


def _store(settings: Settings):  # type: ignore[no-untyped-def]
    from dialer.storage import SqlStore

    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return SqlStore(settings.database_url)


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    store = _store(settings)
    try:
        store.migrate()
    finally:
        store.dispose()
    print("database is at the latest schema")
    return 0


def cmd_tenants_create(settings: Settings, args: argparse.Namespace) -> int:
    store = _store(settings)
    try:
        store.migrate()
        tenant_id = asyncio.run(
            store.create_tenant(
                args.name, default_region=args.region, max_call_duration_seconds=args.max_call_seconds
            )
        )
    finally:
        store.dispose()
    print(tenant_id)
    return 0


def _for_tenant(settings: Settings, raw: str, work: Callable[[Any, UUID], Coroutine[Any, Any, T]]) -> T | int:
    """Run ``work(store, tenant_id)`` for the tenant ``--tenant`` names; an exit code if there is none."""
    try:
        tenant_id = UUID(raw)
    except ValueError:
        print("error: --tenant must be a tenant id (UUID)", file=sys.stderr)
        return 2
    store = _store(settings)
    try:
        store.migrate()
        if not asyncio.run(store.tenant_exists(tenant_id)):
            print("error: no such tenant", file=sys.stderr)
            return 1
        return asyncio.run(work(store, tenant_id))
    finally:
        store.dispose()


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    async def create(store: Any, tenant_id: UUID) -> str:
        _key_id, plaintext = await store.create_api_key(tenant_id, publishable=args.publishable)
        return str(plaintext)

    plaintext = _for_tenant(settings, args.tenant, create)
    if isinstance(plaintext, int):
        return plaintext
    print(plaintext)  # shown once: only its SHA-256 is stored
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from dialer.storage import Conflict

    store = _store(settings)
    try:
        store.migrate()
        revoked = asyncio.run(store.revoke_api_key(args.key))
    except Conflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    if not revoked:
        print("error: no such active key", file=sys.stderr)
        return 1
    print("revoked")
    return 0


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    async def listed(store: Any, tenant_id: UUID) -> list[Any]:
        return list(await store.list_api_keys(tenant_id))

    keys = _for_tenant(settings, args.tenant, listed)
    if isinstance(keys, int):
        return keys
    # The display prefix only: the key itself is not stored, and could not be shown if it were wanted.
    _print_table(
        ("id", "prefix", "kind", "created", "revoked"),
        (
            (str(k.id), k.prefix, k.scope, _when(k.created_at), _when(k.revoked_at) if k.revoked_at else "-")
            for k in keys
        ),
    )
    return 0


def cmd_tenants_retention(settings: Settings, args: argparse.Namespace) -> int:
    """Set how long a tenant's call recordings are kept (``none``: until deleted)."""
    raw = args.days.strip().lower()
    days = None if raw in ("none", "forever") else int(raw) if raw.isdigit() else -1
    if days is not None and not 0 <= days <= 36_500:
        print("error: DAYS must be 0 to 36500, or none", file=sys.stderr)
        return 2

    async def update(store: Any, tenant_id: UUID) -> int:
        await store.set_recording_retention(tenant_id, days)
        return 0

    done = _for_tenant(settings, args.tenant, update)
    if done == 0:
        print(f"recordings kept {days} days" if days is not None else "recordings kept until deleted")
    return done


def cmd_tenants_list(settings: Settings, _args: argparse.Namespace) -> int:
    store = _store(settings)
    try:
        store.migrate()
        tenants = asyncio.run(store.list_tenants())
    finally:
        store.dispose()
    _print_table(
        ("id", "name", "region", "created", "retention"),
        (
            (
                str(t.id),
                t.name,
                t.default_region,
                _when(t.created_at),
                "-" if t.recording_retention_days is None else f"{t.recording_retention_days}d",
            )
            for t in tenants
        ),
    )
    return 0


def cmd_inbound_sources(settings: Settings, args: argparse.Namespace) -> int:
    from dialer.inbound_access import Resolver, kamailio_addresses, trunk_networks

    store = _store(settings)
    try:
        store.migrate()
        trunks = asyncio.run(store.list_trunks())
    finally:
        store.dispose()
    resolver = Resolver()
    try:
        if args.kamailio:
            print("# group address mask port tag (the trunk id): Kamailio's permissions address_file")
            print("\n".join(asyncio.run(kamailio_addresses(trunks, resolver))))
        else:
            networks = asyncio.run(trunk_networks(trunks, resolver)) + settings.inbound_proxy_networks()
            print("\n".join(sorted(set(networks))))
    finally:
        resolver.close()
    return 0


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Columns padded to their widest cell, so the output reads in a terminal and splits on spaces."""
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from dialer.app import serve

    return asyncio.run(serve(settings, role=args.role))


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from dialer.demo import run_demo

    if "DIALER_LOG_LEVEL" not in os.environ:
        # The live table is the demo's output: routine INFO lines would scroll it away.
        setup_logging("WARNING", settings.log_format)
    return run_demo(settings, args.data_dir, args.prospects, args.keep_running, args.carrier)


def _prospect_count(text: str) -> int:
    count = int(text)
    if not 1 <= count <= 60:
        raise argparse.ArgumentTypeError("between 1 and 60 (the demo must end within two minutes)")
    return count


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help, and epilogs (the environment lists) kept as written."""


def _version() -> str:
    try:
        return metadata.version("sip-dialer")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def environment_help(names: Iterable[str]) -> str:
    """The epilog listing the settings a command reads: variable, default and meaning."""
    lines = ["environment (read at start-up; see README, Configuration):"]
    for name in names:
        field = Settings.model_fields[name]
        default = "unset" if field.default is None else str(field.default)
        meaning = f"  {field.description}" if field.description else ""
        lines.append(f"  DIALER_{name.upper()} (default: {default}){meaning}")
    return "\n".join(lines)


def _command(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    help: str,
    settings: Iterable[str] = _STORE_SETTINGS,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=help, formatter_class=_Help, epilog=environment_help(settings)
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialer",
        description="SIP gateway and outbound campaign dialer",
        formatter_class=_Help,
        epilog="Run `dialer COMMAND --help` for a command's options and the environment it reads.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    every = list(Settings.model_fields)
    demo = _command(
        commands,
        "demo",
        "run a campaign against a scripted loopback carrier (SIPp, or pjsua2 without it) and show it live",
        [name for name in every if name not in DEMO_OWN_SETTINGS],
    )
    demo.add_argument("--prospects", type=_prospect_count, default=20, help="how many to call (1-60)")
    demo.add_argument("--data-dir", type=Path, default=Path("demo-data"), help="where its SQLite file goes")
    demo.add_argument(
        "--keep-running", action="store_true", help="leave the API up afterwards (Ctrl-C stops)"
    )
    demo.add_argument(
        "--carrier",
        choices=("auto", "sipp", "pjsua2"),
        default="auto",
        help="who plays the carrier: SIPp, pjsua2, or auto (SIPp when `sipp` is on PATH, else pjsua2)",
    )
    demo.set_defaults(func=cmd_demo)

    serve = _command(commands, "serve", "run the dialer: every role in one process, or one role", every)
    serve.add_argument(
        "--role",
        choices=list(ROLES),
        default="all",
        help="all: everything in one process; gateway: SIP workers, dispatcher, API-placed "
        "and inbound calls; scheduler: leader-elected scheduled starts; api: the REST API only "
        "(split roles need DIALER_REDIS_URL)",
    )
    serve.set_defaults(func=cmd_serve)

    _command(commands, "migrate", "create or upgrade the database schema").set_defaults(func=cmd_migrate)

    tenants = commands.add_parser("tenants", help="manage tenants", formatter_class=_Help).add_subparsers(
        dest="action", required=True
    )
    create_tenant = _command(tenants, "create", "create a tenant and print its id")
    create_tenant.add_argument("name")
    create_tenant.add_argument("--region", default="US", help="default region for national numbers")
    create_tenant.add_argument(
        "--max-call-seconds", type=int, default=3600, help="longest call allowed (toll-fraud guard)"
    )
    create_tenant.set_defaults(func=cmd_tenants_create)
    _command(
        tenants, "list", "list every tenant: id, name, region, created, recording retention"
    ).set_defaults(func=cmd_tenants_list)
    retention = _command(
        tenants, "retention", "set how long a tenant's call recordings are kept, then deleted (hourly job)"
    )
    retention.add_argument("--tenant", required=True, help="tenant id")
    retention.add_argument("days", help="days after the call (0: at the next pass), or none: until deleted")
    retention.set_defaults(func=cmd_tenants_retention)

    sources = _command(
        commands,
        "inbound-sources",
        "print the networks inbound INVITEs are taken from (every trunk's host addresses and "
        "inbound_cidrs, and DIALER_SIP_INBOUND_PROXIES)",
        [*_STORE_SETTINGS, "sip_inbound_proxies"],
    )
    sources.add_argument(
        "--kamailio",
        action="store_true",
        help="the trunks' sources as Kamailio's permissions address file (deploy/kamailio TRUNKS_LIST)",
    )
    sources.set_defaults(func=cmd_inbound_sources)

    keys = commands.add_parser("keys", help="manage API keys", formatter_class=_Help).add_subparsers(
        dest="action", required=True
    )
    create_key = _command(keys, "create", "create an API key and print it once")
    create_key.add_argument("--tenant", required=True, help="tenant id")
    create_key.add_argument("--publishable", action="store_true", help="pk_live_ key (read-mostly)")
    create_key.set_defaults(func=cmd_keys_create)
    list_keys = _command(
        keys, "list", "list a tenant's keys: id, prefix, kind, created, revoked (never the key itself)"
    )
    list_keys.add_argument("--tenant", required=True, help="tenant id")
    list_keys.set_defaults(func=cmd_keys_list)
    revoke_key = _command(keys, "revoke", "revoke an API key at once")
    revoke_key.add_argument(
        "key", help="the key's id, the full key (sk_live_...) or its 12-character prefix (as keys list shows)"
    )
    revoke_key.set_defaults(func=cmd_keys_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    logging.getLogger(__name__).debug("running %s", args.command)
    code: int = args.func(settings, args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
