"""`automateos`: the command line, built on `automateos.Client`.

argparse (the standard library) rather than click/typer: the commands are few and flat, and the
SDK keeps its dependency set to httpx, pydantic and PyYAML.

Exit status: 0 done, 1 the operation or the run failed (or the API refused), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from automateos import (
    APIError,
    AutomateOSError,
    Client,
    FileTokenStore,
    NotLoggedIn,
    TransportError,
    WaitTimeout,
)
from automateos._cli import account, apply, runs, workflows
from automateos._cli.files import FileProblem
from automateos._cli.output import Output
from automateos._cli.timespec import moment
from automateos._cli.usage import UsageError

RUN_STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")
CREDENTIAL_TYPES = tuple(account.CREDENTIAL_FIELDS)


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options every command takes, before or after its name (a subcommand's copy keeps the
    value given at the top unless given again)."""

    def default(value: str | None) -> str | None:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--auth-url",
        default=default(None),
        help="auth service (env AUTOMATEOS_AUTH_URL; default http://127.0.0.1:8001)",
    )
    group.add_argument(
        "--api-url",
        default=default(None),
        help="workflows API (env AUTOMATEOS_API_URL; default http://127.0.0.1:8002)",
    )
    group.add_argument(
        "--ingest-url",
        default=default(None),
        help="ingest, checked by `status` (env AUTOMATEOS_INGEST_URL; default http://127.0.0.1:8003)",
    )
    group.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default=default("table"),
        help="table for people (default), json for scripts",
    )


def _run_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run id") from None


def _moment_arg(text: str) -> object:
    try:
        return moment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="automateos",
        description="Workflows as code: apply, export, run and follow AutomateOS workflows.",
        epilog="Run `automateos COMMAND --help` for a command's options.",
    )
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, **kwargs: object) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, **kwargs)  # type: ignore[arg-type]
        _common(sub, top=False)
        return sub

    command("status", "whether each service is up and ready (exit 1 if one is not)")
    command("register", "create an account (email and password as for login), then log in")
    command("login", "sign in (AUTOMATEOS_EMAIL/AUTOMATEOS_PASSWORD, or asked) and keep the tokens")
    command("logout", "revoke the session where auth allows, and forget the tokens")
    command("whoami", "the signed-in user's email")

    sub = command("apply", "make workflows match files: create, update, leave alone")
    sub.add_argument(
        "-f",
        "--file",
        required=True,
        type=Path,
        metavar="PATH",
        help="a workflow file, or a folder of .yaml/.yml/.json files",
    )
    sub.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
    sub.add_argument(
        "--prune", action="store_true", help="deactivate your workflows that no file names"
    )

    sub = command("export", "write every workflow as a file apply reads back unchanged")
    sub.add_argument("--dir", type=Path, default=Path("."), help="folder (default: .)")

    sub = command("get", "list workflows or runs")
    sub.add_argument("what", choices=("workflows", "runs"))
    sub.add_argument("--workflow", metavar="NAME", help="runs of this workflow only")
    sub.add_argument("--status", choices=RUN_STATUSES, help="runs in this status only")
    sub.add_argument(
        "--since",
        type=_moment_arg,
        metavar="WHEN",
        help="runs accepted since: 30s, 15m, 1h, 2d, 1w ago or an ISO 8601 time",
    )
    sub.add_argument("--until", type=_moment_arg, metavar="WHEN", help="runs accepted before")
    sub.add_argument(
        "--limit",
        type=int,
        default=20,
        choices=range(1, 101),
        metavar="1-100",
        help="at most this many runs (default 20)",
    )

    sub = command("run", "start a run of a workflow now")
    sub.add_argument("name", metavar="NAME", help="the workflow's name (or id)")
    sub.add_argument(
        "--data",
        metavar="JSON|@FILE",
        help="the body: '{...}', @file.json, or @- for standard input",
    )
    sub.add_argument(
        "--wait", action="store_true", help="wait for the run to end; exit 1 if it failed"
    )
    sub.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="with --wait: give up after this long (default 300)",
    )

    sub = command("logs", "a run's status and steps")
    sub.add_argument("run", type=_run_id, metavar="RUN")

    sub = command("runs", "follow runs")
    tail_commands = sub.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", required=True)
    tail = tail_commands.add_parser(
        "tail",
        help="follow a workflow's new runs until Ctrl-C",
        description="follow a workflow's new runs until Ctrl-C",
    )
    _common(tail, top=False)
    tail.add_argument("name", metavar="NAME")
    tail.add_argument("-n", "--last", type=int, default=5, help="show this many past runs first")
    tail.add_argument(
        "--for",
        dest="for_s",
        type=float,
        metavar="SECONDS",
        help="stop after this long (default: Ctrl-C, at most 24 h)",
    )

    sub = command("retry", "run a run's input again, on the workflow's current version")
    sub.add_argument("run", type=_run_id, metavar="RUN")
    sub = command("cancel", "cancel a queued, running or waiting run")
    sub.add_argument("run", type=_run_id, metavar="RUN")

    sub = command("credentials", "store credentials for nodes (values are never shown)")
    cred_commands = sub.add_subparsers(dest="cred_command", metavar="SUBCOMMAND", required=True)
    cred_set = cred_commands.add_parser(
        "set",
        help="create or replace a credential",
        description="create or replace a credential; the secret comes from the environment or "
        "standard input, never from the command line (which other users can see)",
    )
    _common(cred_set, top=False)
    cred_set.add_argument("name", metavar="NAME")
    cred_set.add_argument("--type", required=True, choices=CREDENTIAL_TYPES, dest="kind")
    cred_set.add_argument(
        "--from-env",
        action="append",
        default=[],
        metavar="[FIELD=]VAR",
        help="take a value from this environment variable (repeatable)",
    )
    cred_set.add_argument(
        "--from-stdin",
        action="store_true",
        help="read a one-field credential's value from standard input",
    )
    cred_list = cred_commands.add_parser("list", help="your credentials (names and types)")
    _common(cred_list, top=False)
    return parser


def _dispatch(args: argparse.Namespace, client: Client, out: Output) -> int:
    handlers: dict[str, Callable[[], int | None]] = {
        "status": lambda: account.status(client, out),
        "register": lambda: account.register(client, out),
        "login": lambda: account.login(client, out),
        "logout": lambda: account.logout(client, out),
        "whoami": lambda: account.whoami(client, out),
        "apply": lambda: apply.run(client, out, args.file, dry_run=args.dry_run, prune=args.prune),
        "export": lambda: workflows.export(client, out, args.dir),
        "run": lambda: runs.start(
            client, out, args.name, runs.read_data(args.data), args.wait, args.timeout
        ),
        "logs": lambda: runs.logs(client, out, args.run),
        "retry": lambda: runs.retry(client, out, args.run),
        "cancel": lambda: runs.cancel(client, out, args.run),
    }
    if args.command == "get":
        if args.what == "workflows":
            workflows.get_workflows(client, out)
            return 0
        runs.get_runs(
            client,
            out,
            workflow=args.workflow,
            status=args.status,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
        return 0
    if args.command == "runs":
        runs.tail(client, out, args.name, args.last, args.for_s)
        return 0
    if args.command == "credentials":
        if args.cred_command == "set":
            account.set_credential(
                client, out, args.name, args.kind, args.from_env, args.from_stdin
            )
        else:
            account.list_credentials(client, out)
        return 0
    return handlers[args.command]() or 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(json_mode=args.output == "json")
    store = FileTokenStore()
    try:
        with Client(
            auth_url=args.auth_url,
            api_url=args.api_url,
            ingest_url=args.ingest_url,
            token_store=store,
        ) as client:
            return _dispatch(args, client, out)
    except UsageError as exc:
        out.error(str(exc))
        return 2
    except apply.ApplyRefused as exc:
        out.error("nothing was changed; fix these first:\n" + str(exc))
        return 1
    except FileProblem as exc:
        out.error(str(exc))
        return 1
    except NotLoggedIn:
        out.error("not logged in: run `automateos login` first")
        return 1
    except (APIError, TransportError, WaitTimeout) as exc:
        out.error(exc.message if isinstance(exc, APIError) else str(exc))
        return 1
    except AutomateOSError as exc:
        out.error(str(exc))
        return 1
    except KeyboardInterrupt:
        out.clear_progress()
        # Ctrl-C is how `runs tail` is meant to end.
        return 0 if args.command == "runs" else 130


if __name__ == "__main__":
    sys.exit(main())
