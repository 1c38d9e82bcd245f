"""tamper-evident audit log (hash chain) and ingest keys

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 18:30:00.000000

- ``audit_log.prev_hash`` and ``entry_hash``: every entry carries the hash of the one before it
  (the chain rule is in dronedispatch/store/audit_chain.py). The entries already there are chained
  here in id order, a page at a time;
- ``audit_chain_head``: one row naming the newest entry and its hash, which appends lock;
- ``ingest_keys``: API keys of ingest sources, only their SHA-256 kept, each owned by one source.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

from dronedispatch.store.audit_chain import GENESIS, HEAD_ID, entry_hash

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PAGE = 1000
_audit = sa.table(
    "audit_log",
    sa.column("id", sa.Integer()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("target_type", sa.String()),
    sa.column("target_id", sa.String()),
    sa.column("detail", sa.JSON()),
    sa.column("prev_hash", sa.String()),
    sa.column("entry_hash", sa.String()),
)


def _chain_existing(conn: sa.Connection) -> tuple[int, str]:
    """Chain the entries already in the log, in id order: (the last id, its hash)."""
    last_id, last_hash = 0, GENESIS
    cols = [_audit.c[n] for n in ("id", "at", "actor", "action", "target_type", "target_id", "detail")]
    set_hashes = (
        _audit.update()
        .where(_audit.c.id == sa.bindparam("row_id"))
        .values(prev_hash=sa.bindparam("prev"), entry_hash=sa.bindparam("hash"))
    )
    while True:
        rows = conn.execute(sa.select(*cols).where(_audit.c.id > last_id).order_by(_audit.c.id).limit(_PAGE)).all()
        hashes = []
        for r in rows:
            h = entry_hash(r.id, r.at, r.actor, r.action, r.target_type, r.target_id, r.detail, last_hash)
            hashes.append({"row_id": r.id, "prev": last_hash, "hash": h})
            last_id, last_hash = r.id, h
        if hashes:
            conn.execute(set_hashes, hashes)  # one batch per page
        if len(rows) < _PAGE:
            return last_id, last_hash


def upgrade() -> None:
    conn = op.get_bind()
    op.add_column("audit_log", sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    op.add_column("audit_log", sa.Column("entry_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    last_id, last_hash = _chain_existing(conn)
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("prev_hash", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
        batch.alter_column("entry_hash", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    assert head is not None
    op.bulk_insert(head, [{"id": HEAD_ID, "last_id": last_id, "last_hash": last_hash}])
    op.create_table(
        "ingest_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("key_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_sha256"),
    )
    op.create_index(op.f("ix_ingest_keys_source"), "ingest_keys", ["source"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ingest_keys_source"), table_name="ingest_keys")
    op.drop_table("ingest_keys")
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("entry_hash")
        batch.drop_column("prev_hash")
