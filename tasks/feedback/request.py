"""The feedback request: plan the threaded reply, save it to Drafts once, follow its state.

Everything here is safe to repeat: one draft per rejection (a marker header searched
before every APPEND, a unique row per rejection).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onward.config.settings import Settings
from onward.tasks.errors import ConfigError
from onward.tasks.feedback.addressing import choose_from, unwritable_reason, writable
from onward.tasks.feedback.replies import (
    ReplyContext,
    build_reply,
    choose_recipient,
    render_feedback_request,
)
from onward.tasks.mail.accounts import Account
from onward.tasks.mail.drafts import DraftRef, DraftStore, ImapDrafts, MaildirDrafts
from onward.tasks.mail.message import Address
from onward.tasks.mail.message_ids import message_id_from_header
from onward.tasks.races import RACES, log
from onward.tasks.rejections import Rejection, needing_attention, retry_failed
from onward.tasks.secrets import load_secret
from onward.tasks.store import (
    FeedbackRequest,
    LedgerEntry,
    utcnow,
)


@dataclass(frozen=True)
class DraftPlan:
    """What to save: the reply's bytes and who it is for (decided, nothing written yet)."""

    rejection: Rejection
    raw: bytes
    to: Address | None
    body: str
    # Why there is no To, in words a person can act on (None when addressed).
    note: str | None = None

    @property
    def state(self) -> str:
        return "drafted" if self.to is not None else "needs_recipient"


NO_RECIPIENT = "no person to write to was found: add a recipient"


def plan_feedback_request(rejection: Rejection, settings: Settings) -> DraftPlan:
    user_addresses = {a.lower() for a in settings.user.addresses}
    username = rejection.account.imap.username if rejection.account.imap else None
    account_address = rejection.account.address or (
        username if username and "@" in username.strip("@") else None
    )
    if account_address:
        user_addresses.add(account_address.lower())
    own = choose_from(rejection.payload.get("recipients") or (), account_address, user_addresses)
    to = choose_recipient(
        rejection.message,
        rejection.payload.get("sender_kind") or "unknown",
        rejection.company,
        rejection.earlier,
        user_addresses,
    )
    note = None if to is not None else NO_RECIPIENT
    if to is not None and not writable(to):
        note = f"{unwritable_reason(to)}: put the recipient in the draft yourself"
        to = None
    contact = rejection.payload.get("contact_name")
    if to is not None and to.addr != rejection.payload.get("contact_addr"):
        contact = to.name or None  # writing to someone else than the sender: greet them
    body = render_feedback_request(
        ReplyContext(
            contact_name=contact,
            company=rejection.company,
            role=rejection.role,
            sender_name=settings.user.name or None,
            original_subject=rejection.message.subject,
            original_date=rejection.message.date,
        ),
        template_dirs=[settings.templates_dir] if settings.templates_dir.is_dir() else [],
    )
    if not own or not writable(Address("", own)):
        raise ConfigError(
            f"mailbox {rejection.account.name!r} has no address to write from; "
            "run `onward connect --address you@example.org` (or set [user] addresses)"
        )
    raw = build_reply(
        rejection.message,
        body,
        from_=Address(settings.user.name, own),
        to=to,
        marker=rejection.marker,
    )
    return DraftPlan(rejection=rejection, raw=raw, to=to, body=body, note=note)


def open_draft_store(account: Account, settings: Settings, folder: str | None) -> DraftStore:
    if account.kind == "maildir" and account.path:
        return MaildirDrafts(Path(account.path))
    if account.kind == "imap" and account.imap is not None and account.secret_ref:
        ref = account.secret_ref
        return ImapDrafts(account.imap, lambda: load_secret(settings.secrets_dir, ref), folder)
    raise ConfigError(f"mailbox {account.name!r} cannot take drafts; run `onward connect`")


def save_draft(
    plan: DraftPlan, settings: Settings, folder: str | None
) -> tuple[str, DraftRef | None]:
    """Find-or-append the draft; returns (state, ref). Never a second draft per rejection."""
    rejection = plan.rejection
    with open_draft_store(rejection.account, settings, folder) as store:
        ref = store.find(rejection.marker)
        if ref is None:
            ref = store.append(plan.raw)
        return plan.state, ref


def existing_request(session: Session, ledger_id: int) -> FeedbackRequest | None:
    return session.scalars(
        select(FeedbackRequest).where(FeedbackRequest.ledger_id == ledger_id)
    ).first()


def refresh_state(request: FeedbackRequest, rejection: Rejection, store: DraftStore) -> str:
    """Has the person deleted the draft, or sent a reply? (onward never recreates it.)"""
    if request.state in ("sent", "discarded"):
        return request.state
    message_id = rejection.message.message_id
    if message_id and store.sent_reply_to(message_id):
        return "sent"
    ref = DraftRef(folder=request.folder or "Drafts", uid=request.draft_uid)
    if not store.exists(ref, request.marker):
        return "discarded"
    return request.state


def record_request(
    session: Session, plan: DraftPlan, state: str, ref: DraftRef | None
) -> FeedbackRequest:
    rejection = plan.rejection
    request = existing_request(session, rejection.ledger_id)
    if request is None:
        request = FeedbackRequest(
            mailbox_id=rejection.mailbox_id, ledger_id=rejection.ledger_id, marker=rejection.marker
        )
        _fill(request, plan, state, ref)
        try:
            with session.begin_nested():
                session.add(request)
            return request
        except IntegrityError:
            # Another worker recorded it first: the expected outcome of a race, not an error.
            log.info("%s: feedback request already recorded by another worker", rejection.title)
            RACES["feedback_requests"] += 1
            request = session.scalars(
                select(FeedbackRequest).where(FeedbackRequest.ledger_id == rejection.ledger_id)
            ).one()
    _fill(request, plan, state, ref)
    session.flush()
    return request


def _fill(request: FeedbackRequest, plan: DraftPlan, state: str, ref: DraftRef | None) -> None:
    request.company, request.role = plan.rejection.company, plan.rejection.role
    request.to_addr = plan.to.addr if plan.to else None
    request.to_name = plan.to.name if plan.to else None
    request.state = state
    request.folder = ref.folder if ref else None
    request.draft_uid = ref.uid if ref else None
    request.note = plan.note
    request.draft_message_id = message_id_from_header(plan.raw.split(b"\r\n\r\n", 1)[0])
    request.updated_at = utcnow()


@dataclass(frozen=True)
class DraftRow:
    """One feedback request as `onward drafts` shows it."""

    company: str | None
    role: str | None
    to: str | None
    state: str
    folder: str | None
    note: str | None
    created_at: datetime


OPEN_STATES = ("drafted", "needs_recipient")


def refresh_requests(settings: Settings, mailbox: str | None) -> int:
    """Look in the mailbox for drafts the person sent or deleted since, and record it;
    returns how many changed state."""
    from onward.tasks.store import Store, get_mailbox

    changed = 0
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        row = get_mailbox(session, mailbox)
        if row is None:
            return 0
        waiting = session.scalars(
            select(FeedbackRequest).where(
                FeedbackRequest.mailbox_id == row.id, FeedbackRequest.state.in_(OPEN_STATES)
            )
        ).all()
        if not waiting:
            return 0
        account = Account.from_row(row, settings)
        with open_draft_store(account, settings, row.drafts_folder) as drafts:
            for request in waiting:
                rejection_id = session.get_one(LedgerEntry, request.ledger_id).message_id
                if rejection_id and drafts.sent_reply_to(rejection_id):
                    request.state, changed = "sent", changed + 1
                elif not drafts.exists(
                    DraftRef(request.folder or "Drafts", request.draft_uid), request.marker
                ):
                    request.state, changed = "discarded", changed + 1
    return changed


def list_requests(settings: Settings, mailbox: str | None) -> list[DraftRow]:
    """The feedback requests of ``mailbox``, oldest first, then the rejections whose
    reactions failed ("needs_attention", "retrying") with what to do in ``note``."""
    from onward.tasks.store import Store, get_mailbox

    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        row = get_mailbox(session, mailbox)
        if row is None:
            return []
        requests = session.scalars(
            select(FeedbackRequest)
            .where(FeedbackRequest.mailbox_id == row.id)
            .order_by(FeedbackRequest.created_at)
        ).all()
        rows = [
            DraftRow(
                company=r.company,
                role=r.role,
                to=f"{r.to_name} <{r.to_addr}>" if r.to_name else r.to_addr,
                state=r.state,
                folder=r.folder,
                note=r.note,
                created_at=r.created_at,
            )
            for r in requests
        ]
        for item in needing_attention(session, row.id):
            when = f"; onward tries again {item.retry_at:%d %b %H:%M} UTC" if item.retry_at else ""
            rows.append(
                DraftRow(
                    company=item.company,
                    role=item.role,
                    to=None,
                    state=item.state,
                    folder=None,
                    note=f"{item.reason} (attempt {item.attempts}{when})",
                    created_at=item.created_at,
                )
            )
        return rows


def retry_given_up(settings: Settings, mailbox: str | None) -> int:
    """`onward drafts --retry`: try the reactions onward gave up on again."""
    from onward.tasks.store import Store, get_mailbox

    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        row = get_mailbox(session, mailbox)
        return retry_failed(session, row.id) if row is not None else 0
