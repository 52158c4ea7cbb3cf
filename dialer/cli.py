"""The ``dialer`` command: demo, serve, migrate, tenants and keys."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

from config.settings import Settings
from dialer.logs import setup_logging

#: What ``dialer serve --role`` accepts (dialer/app.py builds each; kept here so the CLI stays light).
ROLES = ("all", "api", "scheduler", "gateway")


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


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    try:
        tenant_id = UUID(args.tenant)
    except ValueError:
        print("error: --tenant must be a tenant id (UUID)", file=sys.stderr)
        return 2
    store = _store(settings)
    try:
        store.migrate()
        if not asyncio.run(store.tenant_exists(tenant_id)):
            print("error: no such tenant", file=sys.stderr)
            return 1
        _key_id, plaintext = asyncio.run(store.create_api_key(tenant_id, publishable=args.publishable))
    finally:
        store.dispose()
    # Shown once: only its SHA-256 is stored.
    print(plaintext)
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    store = _store(settings)
    try:
        store.migrate()
        revoked = asyncio.run(store.revoke_api_key(args.key))
    finally:
        store.dispose()
    if not revoked:
        print("error: no such active key", file=sys.stderr)
        return 1
    print("revoked")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialer", description="SIP gateway and outbound campaign dialer")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="run a campaign against a scripted loopback carrier and show it live"
    )
    demo.add_argument("--prospects", type=_prospect_count, default=20, help="how many to call (default 20)")
    demo.add_argument("--data-dir", type=Path, default=Path("demo-data"), help="where its SQLite file goes")
    demo.add_argument(
        "--keep-running", action="store_true", help="leave the API up afterwards (Ctrl-C stops)"
    )
    demo.add_argument(
        "--carrier",
        choices=("auto", "sipp", "pjsua2"),
        default="auto",
        help="who plays the carrier: SIPp, pjsua2, or SIPp when `sipp` is on PATH else pjsua2 (default)",
    )
    demo.set_defaults(func=cmd_demo)

    serve = commands.add_parser("serve", help="run the dialer: every role in one process, or one role")
    serve.add_argument(
        "--role",
        choices=list(ROLES),
        default="all",
        help="all (default): everything in one process; gateway: SIP workers, dispatcher, API-placed "
        "and inbound calls; scheduler: leader-elected scheduled starts; api: the REST API only "
        "(split roles need DIALER_REDIS_URL)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(func=cmd_migrate)

    tenants = commands.add_parser("tenants", help="manage tenants").add_subparsers(
        dest="action", required=True
    )
    create_tenant = tenants.add_parser("create", help="create a tenant and print its id")
    create_tenant.add_argument("name")
    create_tenant.add_argument("--region", default="US", help="default region for national numbers")
    create_tenant.add_argument(
        "--max-call-seconds", type=int, default=3600, help="longest call allowed (toll-fraud guard)"
    )
    create_tenant.set_defaults(func=cmd_tenants_create)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create_key = keys.add_parser("create", help="create an API key and print it once")
    create_key.add_argument("--tenant", required=True, help="tenant id")
    create_key.add_argument("--publishable", action="store_true", help="pk_live_ key (read-mostly)")
    create_key.set_defaults(func=cmd_keys_create)
    revoke_key = keys.add_parser("revoke", help="revoke an API key at once")
    revoke_key.add_argument("key", help="the key's id or its full plaintext")
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
