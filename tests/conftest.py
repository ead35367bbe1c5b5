"""Shared fixtures: settings in a temp ONWARD_HOME, a store on SQLite and PostgreSQL, Prefect.

PostgreSQL runs when ONWARD_TEST_DATABASE_URL points at a server where we may create
databases (CI sets it, together with ONWARD_REQUIRE_POSTGRES=1 so a skip becomes a failure).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from onward.config.settings import Settings, load_settings
from onward.tasks.store import Store

pytest_plugins = ["tests.support.dovecot_fixtures", "tests.support.radicale"]

# Tests send traffic nowhere but 127.0.0.1: no telemetry from Prefect, in this process or
# in any server a test starts.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"


def _postgres_admin_url() -> str | None:
    url = os.environ.get("ONWARD_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("ONWARD_REQUIRE_POSTGRES") == "1":
            pytest.fail("ONWARD_REQUIRE_POSTGRES=1 but ONWARD_TEST_DATABASE_URL is not set")
        pytest.skip("set ONWARD_TEST_DATABASE_URL to run the PostgreSQL variant")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'onward.db'}"
        return
    admin_url = _postgres_admin_url()
    assert admin_url is not None
    name = f"onward_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"cannot create a database on {admin_url}: {exc}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    home = tmp_path / "home"
    home.mkdir()
    return load_settings(environ={"ONWARD_HOME": str(home), "ONWARD_DATABASE_URL": database_url})


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    st = Store.open(settings.database_url)
    yield st
    st.close()


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One real Prefect API for the whole session (temporary SQLite, own result storage)."""
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    results = tmp_path_factory.mktemp("prefect-results")
    with (
        temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: results}),
        prefect_test_harness(server_startup_timeout=120),
    ):
        yield


# The slowest tests cover each database and each mailbox backend once rather than every
# combination (the full matrix takes minutes more): ONWARD_FULL_MATRIX=1 runs them all.
REDUCED_MATRIX = {
    "test_hostile_mail_blocks_nothing[maildir-postgresql]",
    "test_hostile_mail_blocks_nothing[imap-sqlite]",
    "test_a_failing_reaction_is_recorded_shown_and_not_repeated[sqlite-maildir]",
    "test_a_failing_reaction_is_recorded_shown_and_not_repeated[postgresql-imap]",
    "test_worker_drafts_once_and_survives_a_restart[postgresql]",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("ONWARD_FULL_MATRIX") == "1":
        return
    dropped = [item for item in items if item.name in REDUCED_MATRIX]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item.name not in REDUCED_MATRIX]
