"""per-district access: an account's district scope

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 20:30:00.000000

- ``users.district``: the one district an operator or pilot works for; NULL is the whole city
  (the centre's supervisors, testers and admins).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (nullable): no batch rebuild of a table other tables may point at
    op.add_column("users", sa.Column("district", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "district")
