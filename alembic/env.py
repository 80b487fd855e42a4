"""Alembic environment for mailcanary.

Two ways in: `Store.upgrade()` hands over a connection of the running daemon in
`config.attributes["connection"]` (no second event loop, no second engine); the alembic
CLI gets a URL from `-x database=...` or `sqlalchemy.url` and runs its own loop.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from monitor.adapters.store import make_engine
from monitor.adapters.tables import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations are frozen history: they spell out the plain column type instead of
    # importing our TypeDecorator, which may change or move later.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table, and the same
        # script still runs as plain ALTERs on PostgreSQL.
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
        **options,
    )


def run_with(connection: Connection) -> None:
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("database")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database: alembic -x database=sqlite:///var/mailcanary.db ...")
    return url


async def run_online() -> None:
    engine = make_engine(database_url(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
    finally:
        await engine.dispose()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    if config.config_file_name is not None:
        # Only for the CLI: inside the daemon this would replace its logging setup.
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    if context.is_offline_mode():
        configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run_online())


main()
