"""The networking_round flow under a real Prefect API: tasks recorded once, the round's
summary as a table artifact, and the same flow run twice changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from onward.config.settings import Settings
from onward.flows.networking_round import networking_round
from onward.tasks.network.service import import_contacts
from onward.tasks.store import Cooldown, LedgerEntry, Mailbox, NetworkTask, Store
from tests.support.paths import SAMPLES

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.mark.usefixtures("prefect_harness")
def test_the_flow_plans_the_week_once_and_leaves_a_summary(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    monkeypatch.setenv("ONWARD_HOME", str(settings.home))
    monkeypatch.setenv("ONWARD_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ONWARD_USER_TIMEZONE", "UTC")
    import_contacts(settings, SAMPLES / "connections.csv", now=NOW)
    with store.unit_of_work() as session:
        box = Mailbox(name="t", kind="maildir", path="/x")
        session.add(box)
        session.flush()
        entry = LedgerEntry(mailbox_id=box.id, key="<r@x>", status="recorded")
        session.add(entry)
        session.flush()
        session.add(
            Cooldown(
                mailbox_id=box.id,
                ledger_id=entry.id,
                days=3,
                starts_at=datetime(2026, 2, 26, 8, tzinfo=UTC),
                ends_at=datetime(2026, 3, 1, 8, tzinfo=UTC),
                calendar_uid="c@onward",
                ended_at=datetime(2026, 3, 1, 8, tzinfo=UTC),
            )
        )

    first = networking_round(now=NOW.isoformat())
    assert (first["week"], first["status"], first["tasks"]) == ("2026-03-02", "planned", 3)
    assert len(first["created"]) == 3
    second = networking_round(now=NOW.replace(hour=20).isoformat())
    assert (second["created"], second["tasks"]) == ([], 3)
    with store.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(NetworkTask)) == 3

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["networking-round-2026-03-02"])
            )
        )
    assert artifacts
    assert artifacts[0].type == "table"
    assert "Follow" in str(artifacts[0].data)
    assert settings.calendar_file.is_file()
