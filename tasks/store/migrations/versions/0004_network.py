"""networking: contacts, weekly engagement tasks, interactions

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("profile_url", sa.String(length=500), nullable=True),
        sa.Column("match_key", sa.String(length=600), nullable=False),
        sa.Column("company", sa.Text(), nullable=True),
        sa.Column("position", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("connected_on", sa.Date(), nullable=True),
        sa.Column("stage", sa.String(length=10), nullable=False),
        sa.Column("touches", sa.Integer(), nullable=False),
        sa.Column("last_touch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_reply_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_interaction_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stage_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scanned_ledger_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
        sa.UniqueConstraint("profile_url"),
    )
    op.create_index("ix_contacts_match_key", "contacts", ["match_key"])
    op.create_table(
        "network_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("stage", sa.String(length=10), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("replied", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("week", "contact_id", name="uq_network_tasks_week_contact"),
    )
    op.create_index("ix_network_tasks_week", "network_tasks", ["week"])
    op.create_table(
        "network_interactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("ledger_id", sa.Integer(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["ledger_id"], ["ledger.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["network_tasks.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "contact_id", "ledger_id", name="uq_network_interactions_contact_ledger"
        ),
    )
    op.create_index("ix_network_interactions_contact", "network_interactions", ["contact_id"])


def downgrade() -> None:
    op.drop_index("ix_network_interactions_contact", table_name="network_interactions")
    op.drop_table("network_interactions")
    op.drop_index("ix_network_tasks_week", table_name="network_tasks")
    op.drop_table("network_tasks")
    op.drop_index("ix_contacts_match_key", table_name="contacts")
    op.drop_table("contacts")
