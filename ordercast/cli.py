"""The command line: `ordercast serve | demo | migrate | vapid | admin … | apikey …`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging.config
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType

import uvicorn
from pydantic import ValidationError
from tortoise import Tortoise

from ordercast.config import Settings
from ordercast.events import format_time
from ordercast.models.db import tortoise_config, upgrade
from ordercast.server.logs import log_config


class Server(uvicorn.Server):
    """uvicorn's server, telling the app the moment a shutdown signal arrives so streams end first."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def serve(settings: Settings, *, after_start: Callable[[], object] | None = None, access_log: bool = True) -> None:
    from ordercast.server.app import create_app, signal_shutdown
    from ordercast.server.protocol import http_protocol

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config(settings.log_level, settings.log_format),
        access_log=access_log,
        ws_ping_interval=settings.ping_interval,
        ws_ping_timeout=settings.ping_interval,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        # The app sees the socket peer and applies ORDERCAST_TRUSTED_PROXIES itself: uvicorn's own
        # rewrite (on by default for 127.0.0.1) would let any local process name any client address.
        proxy_headers=False,
        loop="uvloop",
        http=http_protocol(settings.request_read_timeout),
        ws="websockets-sansio",
        ws_max_size=settings.ws_max_frame_bytes,
    )
    server = Server(config, on_exit=lambda: signal_shutdown(app))
    # uvicorn's Config(loop=...) only applies through Server.run(); asyncio.run() would use the stdlib loop.
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(_run(server, after_start))


async def _run(server: Server, after_start: Callable[[], object] | None) -> None:
    task = asyncio.ensure_future(server.serve())
    if after_start is not None:
        listening = asyncio.ensure_future(server.listening.wait())
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if server.started:
            result = after_start()
            if asyncio.iscoroutine(result):
                helper = asyncio.ensure_future(result)
                task.add_done_callback(lambda _: helper.cancel())
    await task


async def _with_db(settings: Settings, work: Callable[[], object]) -> object:
    await Tortoise.init(config=tortoise_config(settings.database_url, pool_size=1))
    try:
        result = work()
        return await result if asyncio.iscoroutine(result) else result
    finally:
        await Tortoise.close_connections()


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    serve(settings)
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from ordercast.demo import prepare_demo, run_shop

    settings, login = prepare_demo(settings)
    print(f"ordercast demo: open {settings.base_url}/ and sign in as {login[0]} / {login[1]}", flush=True)
    print("A simulated shop places and advances orders every few seconds. Ctrl-C stops it.", flush=True)
    # The shop's own requests would bury what the demo says in access-log lines: `serve` keeps them.
    serve(settings, after_start=lambda: run_shop(settings), access_log=False)
    return 0


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(upgrade(settings.database_url))
    print("database is up to date")
    return 0


def _cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    from ordercast.services.retention import Policy, prune

    if settings.is_sqlite:
        asyncio.run(upgrade(settings.database_url))
    # The notification.deleted events go to the outbox; a running server's sweeper publishes them.
    pruned = asyncio.run(_with_db(settings, lambda: prune(Policy.of(settings), publish=lambda events: None)))
    assert isinstance(pruned, dict)
    for kind, count in pruned.items():
        print(f"{kind}\t{count}")
    return 0


def _cmd_admin_create(args: argparse.Namespace, settings: Settings) -> int:
    from ordercast.services.accounts import ensure_admin

    password = args.password
    if password is None:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat password: "):
            print("the passwords differ", file=sys.stderr)
            return 1
    if len(password) < 8:
        print("the password must have at least 8 characters", file=sys.stderr)
        return 1
    if settings.is_sqlite:
        asyncio.run(upgrade(settings.database_url))
    asyncio.run(_with_db(settings, lambda: ensure_admin(args.email.lower(), password)))
    print(f"admin {args.email.lower()} is ready", file=sys.stderr)
    return 0


def _cmd_apikey_create(args: argparse.Namespace, settings: Settings) -> int:
    from ordercast.errors import NotFound
    from ordercast.services.accounts import create_api_key

    if settings.is_sqlite:
        asyncio.run(upgrade(settings.database_url))
    email = args.admin.lower() if args.admin else None
    try:
        key = asyncio.run(_with_db(settings, lambda: create_api_key(admin_email=email, name=args.name)))
    except NotFound as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(key)
    return 0


def _account_command(settings: Settings, work: Callable[[], Awaitable[list[str]]]) -> int:
    """Run an admin or API key command; its lines on stdout, or its refusal as one line on stderr."""
    from ordercast.errors import OrdercastError

    if settings.is_sqlite:
        asyncio.run(upgrade(settings.database_url))
    try:
        lines = asyncio.run(_with_db(settings, work))
    except OrdercastError as exc:
        print(f"ordercast: {exc.message}", file=sys.stderr)
        return 1
    assert isinstance(lines, list)
    for line in lines:
        print(line)
    return 0


def _cmd_admin_list(args: argparse.Namespace, settings: Settings) -> int:
    from ordercast.services.accounts import list_admins

    async def work() -> list[str]:
        return [
            f"{user.email}\t{'disabled' if user.disabled_at else 'active'}\t{format_time(user.created_at)}"
            for user in await list_admins()
        ]

    return _account_command(settings, work)


def _cmd_admin_disable(args: argparse.Namespace, settings: Settings) -> int:
    from ordercast.services.accounts import disable_admin

    async def work() -> list[str]:
        taken = await disable_admin(args.email.lower())
        print(
            f"admin {args.email.lower()} is disabled: {taken.sessions} session(s) ended, {taken.api_keys} API"
            f" key(s) revoked, {taken.push_subscriptions} push subscription(s) removed; running servers refuse"
            f" them within {settings.auth_cache_ttl:g} s",
            file=sys.stderr,
        )
        return []

    return _account_command(settings, work)


def _cmd_admin_enable(args: argparse.Namespace, settings: Settings) -> int:
    from ordercast.services.accounts import enable_admin

    async def work() -> list[str]:
        await enable_admin(args.email.lower())
        print(f"admin {args.email.lower()} may log in again", file=sys.stderr)
        return []

    return _account_command(settings, work)


def _cmd_apikey_list(args: argparse.Namespace, settings: Settings) -> int:
    from ordercast.services.accounts import SERVICE_ADMIN, EnvKey, list_api_keys

    async def work() -> list[str]:
        lines = [
            f"{key.id}\t{SERVICE_ADMIN}\t{key.prefix}…\t(ORDERCAST_API_KEYS: not revocable)\t-\t-"
            for key in map(EnvKey.of, settings.api_key_list)
        ]
        for key in await list_api_keys():
            await key.fetch_related("user")
            used = format_time(key.last_used_at) if key.last_used_at else "never used"
            created = format_time(key.created_at)
            lines.append(f"{key.id}\t{key.user.email}\t{key.prefix or 'ock_'}…\t{key.name}\t{created}\t{used}")
        return lines

    return _account_command(settings, work)


def _cmd_apikey_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from ordercast.errors import Conflict
    from ordercast.services.accounts import EnvKey, revoke_api_key

    async def work() -> list[str]:
        if any(EnvKey.of(key).id == args.id for key in settings.api_key_list):
            raise Conflict(f"{args.id} comes from ORDERCAST_API_KEYS: remove it there to revoke it")
        await revoke_api_key(args.id)
        print(f"revoked {args.id}; running servers refuse it within {settings.auth_cache_ttl:g} s", file=sys.stderr)
        return []

    return _account_command(settings, work)


def _cmd_vapid(args: argparse.Namespace, settings: Settings) -> int:
    from ordercast.notify.vapid import InvalidKey, VapidKey
    from ordercast.services.push import rotate_vapid_key, vapid_key
    from ordercast.services.secrets import SecretUnreadable, secret_box

    box = secret_box(settings.secret_key.get_secret_value() if settings.secret_key else None)

    if settings.vapid_private_key is not None:
        if args.rotate:
            print("the key comes from ORDERCAST_VAPID_PRIVATE_KEY: set a new one there to rotate it", file=sys.stderr)
            return 1
        try:
            print(VapidKey.parse(settings.vapid_private_key.get_secret_value()).public_key)
        except InvalidKey as error:
            print(f"ORDERCAST_VAPID_PRIVATE_KEY: {error}", file=sys.stderr)
            return 1
        return 0
    if settings.is_sqlite:
        asyncio.run(upgrade(settings.database_url))
    if not args.rotate:
        try:
            key = asyncio.run(_with_db(settings, lambda: vapid_key(None, box)))
        except SecretUnreadable as error:
            print(f"ordercast: {error}", file=sys.stderr)
            return 1
        assert isinstance(key, VapidKey)
        print(key.public_key)
        return 0
    rotated = asyncio.run(_with_db(settings, lambda: rotate_vapid_key(box)))
    assert isinstance(rotated, tuple)
    key, dropped = rotated
    print(key.public_key)
    print(
        f"rotated: {dropped} push subscription(s) made for the old key were removed (dashboards subscribe again"
        f" with the new one); running servers use it within {settings.vapid_reload_interval:g} s",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ordercast",
        description="Self-hosted order notifications: live dashboards, Web Push and Telegram. "
        "Configured by ORDERCAST_* environment variables (see the README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_p = commands.add_parser("serve", help="run the server, bot and dispatchers in one process")
    serve_p.set_defaults(run=_cmd_serve, serves=True)
    demo_p = commands.add_parser("demo", help="serve on SQLite with a simulated shop placing orders")
    demo_p.set_defaults(run=_cmd_demo, serves=True)
    migrate_p = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate_p.set_defaults(run=_cmd_migrate)
    prune_p = commands.add_parser("prune", help="one retention pass now (what ORDERCAST_RETENTION_DAYS lets go)")
    prune_p.set_defaults(run=_cmd_prune)

    admin_p = commands.add_parser("admin", help="manage dashboard admins")
    admin_cmds = admin_p.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    create_admin = admin_cmds.add_parser("create", help="create an admin, or set an existing admin's password")
    create_admin.add_argument("--email", required=True, help="the admin's email (their login)")
    create_admin.add_argument("--password", help="the password (prompted for when missing)")
    create_admin.set_defaults(run=_cmd_admin_create)
    admin_cmds.add_parser("list", help="list the admins: email, active or disabled, created").set_defaults(
        run=_cmd_admin_list
    )
    disable_admin = admin_cmds.add_parser(
        "disable", help="stop an admin: no login; their sessions end, API keys and push subscriptions go"
    )
    disable_admin.add_argument("email", help="the admin's email")
    disable_admin.set_defaults(run=_cmd_admin_disable)
    enable_admin = admin_cmds.add_parser("enable", help="let a disabled admin log in again")
    enable_admin.add_argument("email", help="the admin's email")
    enable_admin.set_defaults(run=_cmd_admin_enable)

    vapid_p = commands.add_parser("vapid", help="print the Web Push (VAPID) public key, or --rotate the key pair")
    vapid_p.add_argument(
        "--rotate",
        action="store_true",
        help="replace the stored key pair (every push subscription is removed: browsers subscribe again)",
    )
    vapid_p.set_defaults(run=_cmd_vapid)

    key_p = commands.add_parser("apikey", help="manage API keys for shop backends")
    key_cmds = key_p.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    create_key = key_cmds.add_parser("create", help="create an API key and print it (shown only once)")
    create_key.add_argument("--admin", help="the admin the key acts as (default: the built-in service admin)")
    create_key.add_argument("--name", default="", help="a label to recognise the key by")
    create_key.set_defaults(run=_cmd_apikey_create)
    key_cmds.add_parser(
        "list", help="list API keys (never the keys): id, admin, prefix, name, created, last used"
    ).set_defaults(run=_cmd_apikey_list)
    revoke_key = key_cmds.add_parser("revoke", help="revoke an API key by its id")
    revoke_key.add_argument("id", help="the key's id (key_…), as `apikey list` shows it")
    revoke_key.set_defaults(run=_cmd_apikey_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        # One line per bad variable, naming it as the operator set it; never the value (it may be a secret).
        for error in exc.errors():
            name = "ORDERCAST_" + "_".join(str(part) for part in error["loc"]).upper()
            print(f"ordercast: {name}: {error['msg']}", file=sys.stderr)
        return 2
    logging.config.dictConfig(log_config(settings.log_level, settings.log_format))
    if not getattr(args, "serves", False):
        # A command whose output is piped (`ordercast vapid | head`) ends quietly when the reader goes.
        # Never the server: a write to a client that just hung up would kill the whole process.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return int(args.run(args, settings))


if __name__ == "__main__":
    raise SystemExit(main())
