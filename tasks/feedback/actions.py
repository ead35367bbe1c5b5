"""The feedback request's side effects as Prefect tasks: each shows in the UI as a task run
with a readable name, and retries only when repeating it is safe."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE

from onward.tasks.errors import OnwardError
from onward.tasks.feedback import request as requests
from onward.tasks.feedback.request import DraftPlan
from onward.tasks.mail.drafts import DraftRef
from onward.tasks.rejections import Rejection
from onward.tasks.runtime import app_store, transient
from onward.tasks.store import Mailbox

RETRY_DELAYS = [2.0, 10.0, 30.0]


@dataclass(frozen=True)
class Problem:
    """Why no draft could be planned, in words that say what to do."""

    reason: str


@dataclass(frozen=True)
class ExistingRequest:
    state: str
    folder: str | None


@task(
    name="find feedback request",
    task_run_name="find the request for {rejection.title}",
    retries=3,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def find_request(rejection: Rejection, config_file: str | None) -> ExistingRequest | None:
    with app_store(config_file) as (_settings, store), store.unit_of_work() as session:
        row = requests.existing_request(session, rejection.ledger_id)
        return ExistingRequest(row.state, row.folder) if row else None


@task(
    name="plan draft",
    task_run_name="write the draft for {rejection.title}",
    cache_policy=NO_CACHE,
)
def plan_draft(rejection: Rejection, config_file: str | None) -> DraftPlan | Problem:
    """Render the template and build the threaded reply; nothing is written yet. A problem
    the person must fix (no address to write from, a broken template) is returned, not
    raised: it is recorded on the rejection, and the pass goes on."""
    with app_store(config_file) as (settings, _store):
        try:
            return requests.plan_feedback_request(rejection, settings)
        except OnwardError as exc:
            return Problem(str(exc))


@task(
    name="save draft",
    task_run_name="save the draft for {plan.rejection.title}",
    retries=3,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def save_draft(plan: DraftPlan, config_file: str | None) -> DraftRef | None:
    """Search Drafts for the marker, APPEND only when absent: safe to retry."""
    with app_store(config_file) as (settings, store):
        with store.unit_of_work() as session:
            folder = session.get_one(Mailbox, plan.rejection.mailbox_id).drafts_folder
        _state, ref = requests.save_draft(plan, settings, folder)
        return ref


@task(
    name="record feedback request",
    task_run_name="record the request for {plan.rejection.title}",
    retries=3,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def record_request(plan: DraftPlan, ref: DraftRef | None, config_file: str | None) -> None:
    with app_store(config_file) as (_settings, store), store.unit_of_work() as session:
        requests.record_request(session, plan, plan.state, ref)


@task(
    name="refresh draft state",
    task_run_name="look for the draft for {rejection.title}",
    retries=3,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def refresh_draft_state(rejection: Rejection, config_file: str | None) -> str:
    """The person may have sent or deleted the draft since: record it, never recreate it."""
    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        row = requests.existing_request(session, rejection.ledger_id)
        if row is None:
            return "missing"
        folder = session.get_one(Mailbox, rejection.mailbox_id).drafts_folder
        with requests.open_draft_store(rejection.account, settings, folder) as drafts:
            row.state = requests.refresh_state(row, rejection, drafts)
        return row.state
