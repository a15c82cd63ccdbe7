"""Alembic environment: runs on the connection `db.migrate` passes in `config.attributes["connection"]`."""

from alembic import context
from sqlmodel import SQLModel

import db.tables  # noqa: F401  (registers the tables on SQLModel.metadata, for autogenerate)

connection = context.config.attributes.get("connection")
if connection is None:
    # There is no alembic.ini and no URL here on purpose: db.migrate holds the advisory lock and owns the
    # transaction, so every run (the CLI included) goes through it. To write a revision, on a migrated database:
    # command.revision(db.migrate.alembic_config(connection), message="...", autogenerate=True)
    raise RuntimeError("run migrations through db.migrate (agentrunner migrate), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    compare_type=True,
    compare_server_default=True,
)
# db.migrate's connection is already inside its transaction (the one holding the advisory lock), so this
# joins it instead of committing on its own.
with context.begin_transaction():
    context.run_migrations()
