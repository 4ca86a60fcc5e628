"""latency histogram in the daily roll-up

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00

Adds one counter per latency bucket to ``usage_daily`` (see ``sluice.accounting.latency``) and fills them from the
usage records already stored, so the p50/p95 series covers the days before the upgrade too. The bucket edges are
written out here rather than imported: a migration must keep meaning what it meant when it was written.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = [f"latency_h{i:02d}" for i in range(32)]
BOUNDS_MS = [round(16 * 2 ** (k / 2), 3) for k in range(31)]
DIMENSIONS = ("workspace_id", "key_id", "user_id", "model")


def upgrade() -> None:
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    _backfill()


def _backfill() -> None:
    """Count the stored successful records per roll-up row and bucket (one grouped scan, one batched update)."""
    bind = op.get_bind()
    records = sa.table(
        "usage_records",
        sa.column("created_at"),
        sa.column("status"),
        sa.column("latency_ms"),
        *(sa.column(d) for d in DIMENSIONS),
    )
    if bind.dialect.name == "postgresql":
        day: Any = sa.cast(sa.func.timezone("UTC", records.c.created_at), sa.Date)
    else:
        day = sa.func.date(records.c.created_at)  # SQLite keeps naive UTC text
    bucket = sa.case(*((records.c.latency_ms < bound, i) for i, bound in enumerate(BOUNDS_MS)), else_=len(BOUNDS_MS))
    dims = [sa.func.coalesce(records.c[d], "") for d in DIMENSIONS]
    query = sa.select(day, *dims, bucket, sa.func.count()).where(records.c.status < 400).group_by(day, *dims, bucket)
    rows: dict[tuple[Any, ...], list[int]] = {}
    for found in bind.execute(query):
        found_day, workspace, key, user, model, index, count = tuple(found)
        rows.setdefault((str(found_day), workspace, key, user, model), [0] * len(COLUMNS))[int(index)] = int(count)
    if not rows:
        return
    daily = sa.table(
        "usage_daily", sa.column("day", sa.Date), *(sa.column(d) for d in DIMENSIONS), *map(sa.column, COLUMNS)
    )
    statement = (
        daily.update()
        .where(
            daily.c.day == sa.bindparam("b_day", type_=sa.Date),
            *(daily.c[d] == sa.bindparam(f"b_{d}") for d in DIMENSIONS),
        )
        .values({name: sa.bindparam(f"b_{name}") for name in COLUMNS})
    )
    params = [
        {
            "b_day": date.fromisoformat(found_day[:10]),
            **{f"b_{d}": v for d, v in zip(DIMENSIONS, dims_values, strict=True)},
            **{f"b_{name}": counts[i] for i, name in enumerate(COLUMNS)},
        }
        for (found_day, *dims_values), counts in rows.items()
    ]
    bind.execute(statement, params)


def downgrade() -> None:
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
