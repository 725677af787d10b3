"""`python -m shared.db upgrade|downgrade REV|current|history|revision -m MSG|reencrypt`."""

from __future__ import annotations

import argparse
import asyncio

from alembic import command

from shared.db.migrate import alembic_config
from shared.db.reencrypt import reencrypt
from shared.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.db", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade", help="revert migrations")
    down.add_argument("revision")
    sub.add_parser("current", help="show the applied revision")
    sub.add_parser("history", help="list migrations")
    rev = sub.add_parser("revision", help="create a migration from model changes")
    rev.add_argument("-m", "--message", required=True)
    sub.add_parser(
        "reencrypt", help="seal every credential and webhook secret under the newest key"
    )
    args = parser.parse_args()

    if args.action == "reencrypt":
        settings = get_settings()
        done = asyncio.run(reencrypt(settings.database_url, settings.redis_url, settings.keyring()))
        print(
            f"re-encrypted under key {settings.keyring().newest_id!r}: "
            f"{done.credentials} credentials, {done.webhook_secrets} webhook secrets "
            f"({done.redis_records} routing records updated in Redis)"
        )
        return

    config = alembic_config()
    if args.action == "upgrade":
        command.upgrade(config, args.revision)
    elif args.action == "downgrade":
        command.downgrade(config, args.revision)
    elif args.action == "current":
        command.current(config)
    elif args.action == "history":
        command.history(config)
    else:
        command.revision(config, message=args.message, autogenerate=True)


if __name__ == "__main__":
    main()
