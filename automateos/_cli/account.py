"""Accounts and credentials: register, login, logout, whoami, credentials set/list."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Sequence
from typing import Any

from automateos import Client
from automateos._cli.output import Output
from automateos._cli.usage import UsageError

# The fields each credential type takes (the API's rule; it answers 422 for anything else).
CREDENTIAL_FIELDS = {
    "bearer": ("token",),
    "basic": ("username", "password"),
    "header": ("name", "value"),
    "secret": ("value",),
}


def status(client: Client, out: Output) -> int:
    """Each service's address and readiness; 1 when any is not ready (e.g. `make up` is not
    running)."""
    ready = client.ready()
    urls = client.endpoints.services()
    rows = [{"service": name, "url": urls[name], "ready": ready[name]} for name in urls]
    out.table(rows, ("service", "url", "ready"))
    return 0 if all(ready.values()) else 1


def _email_and_password() -> tuple[str, str]:
    """From AUTOMATEOS_EMAIL / AUTOMATEOS_PASSWORD, else asked for on the terminal."""
    email = os.environ.get("AUTOMATEOS_EMAIL")
    password = os.environ.get("AUTOMATEOS_PASSWORD")
    interactive = sys.stdin.isatty()
    if not email:
        if not interactive:
            raise UsageError("set AUTOMATEOS_EMAIL (or run this on a terminal to be asked)")
        email = input("email: ").strip()
    if not password:
        if not interactive:
            raise UsageError("set AUTOMATEOS_PASSWORD (or run this on a terminal to be asked)")
        password = getpass.getpass("password: ")
    return email, password


def _signed_in(client: Client, out: Output, email: str, password: str) -> None:
    client.login(email, password)
    user = client.me()
    if out.json_mode:
        out.json({"email": user.email, "id": str(user.id)})
    else:
        out.line(f"logged in as {user.email}")


def login(client: Client, out: Output) -> None:
    _signed_in(client, out, *_email_and_password())


def register(client: Client, out: Output) -> None:
    """Create an account, then log in with it."""
    email, password = _email_and_password()
    client.register(email, password)
    _signed_in(client, out, email, password)


def logout(client: Client, out: Output) -> None:
    had_tokens = client.tokens is not None
    revoked = client.logout()
    if out.json_mode:
        out.json({"logged_out": had_tokens, "revoked": revoked})
    elif not had_tokens:
        out.line("not logged in")
    elif revoked:
        out.line("logged out (the session is revoked)")
    else:
        out.line("logged out here; revocation is unavailable (the auth service has no logout)")
        out.note("the refresh token stays valid until it expires")


def whoami(client: Client, out: Output) -> None:
    user = client.me()
    if out.json_mode:
        out.json(user)
    else:
        out.line(user.email)


def _env(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise UsageError(f"--from-env: the environment variable {variable} is not set or empty")
    return value


def credential_data(
    kind: str, from_env: Sequence[str], from_stdin: bool, stdin_text: str | None = None
) -> dict[str, str]:
    """The credential's values, from environment variables or standard input (never argv).

    `--from-env VAR` fills a one-field type; `--from-env FIELD=VAR` (repeatable) any type.
    """
    fields = CREDENTIAL_FIELDS[kind]
    if from_stdin:
        if len(fields) != 1 or from_env:
            raise UsageError(
                f"--from-stdin fills a one-field type; a {kind} credential takes "
                + ", ".join(fields)
            )
        text = sys.stdin.read() if stdin_text is None else stdin_text
        value = text.rstrip("\r\n")
        if not value:
            raise UsageError("--from-stdin: standard input was empty")
        return {fields[0]: value}
    if not from_env:
        raise UsageError("give the values with --from-env VAR (or FIELD=VAR), or --from-stdin")
    data: dict[str, str] = {}
    for entry in from_env:
        field, sep, variable = entry.partition("=")
        if not sep:
            if len(fields) != 1:
                raise UsageError(
                    f"a {kind} credential takes {', '.join(fields)}: use --from-env FIELD=VAR"
                )
            field, variable = fields[0], entry
        if field not in fields:
            raise UsageError(f"a {kind} credential has no field {field!r} ({', '.join(fields)})")
        data[field] = _env(variable)
    missing = [field for field in fields if field not in data]
    if missing:
        raise UsageError(f"missing --from-env for: {', '.join(missing)}")
    return data


def set_credential(
    client: Client, out: Output, name: str, kind: str, from_env: Sequence[str], from_stdin: bool
) -> None:
    credential = client.set_credential(name, kind, credential_data(kind, from_env, from_stdin))
    if out.json_mode:
        out.json(credential)
    else:
        out.line(f"credential {credential.name} saved ({credential.type})")


def list_credentials(client: Client, out: Output) -> None:
    credentials = client.list_credentials()
    if out.json_mode:
        out.json(credentials)
        return
    rows: list[dict[str, Any]] = [
        {
            "name": item.name,
            "type": item.type,
            "fields": ", ".join(item.fields_set),
            "updated": item.updated_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        }
        for item in credentials
    ]
    out.table(rows, ("name", "type", "fields", "updated"))
