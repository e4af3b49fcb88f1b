"""Reads and writes of the tracker's tables, one transaction per call.

Every method is synchronous and meant to run in a worker thread. A method that rejects its
input raises before it writes, or inside the transaction that it then rolls back, so a
rejected request leaves the database as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from customer_tracker import models, schemas
from customer_tracker.errors import Conflict, NotFound
from customer_tracker.scoring import SATISFACTION_SURVEY_COUNT, csat_to_percent

Clock = Callable[[], dt.datetime]

# Polls of the ingestion service older than this are deleted; uptime looks back at most this far.
PROBE_RETENTION = dt.timedelta(days=30)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True)
class ReconciliationSummary:
    run_id: int
    created_at: dt.datetime
    compared: int
    matched: int
    accuracy_percent: Decimal | None


@dataclasses.dataclass(frozen=True)
class Uptime:
    successful_polls: int
    polls: int
    since: dt.datetime

    @property
    def percent(self) -> Decimal | None:
        if self.polls == 0:
            return None
        return (Decimal(self.successful_polls) * 100 / Decimal(self.polls)).quantize(Decimal("0.001"))


@dataclasses.dataclass(frozen=True)
class CustomerFacts:
    """The stored data of one customer that its status and metrics are computed from."""

    customer_id: str
    company_name: str
    pilot: bool
    kickoff_date: dt.date
    currency: str
    previous_monthly_cost: Decimal | None
    monthly_cost: Decimal | None
    phase: str
    app_ids: tuple[str, ...]
    phase_changes: tuple[tuple[str, dt.datetime], ...]
    latest_scores: tuple[Decimal, ...]  # newest first, SATISFACTION_SURVEY_COUNT at most
    survey_count: int
    open_tickets: int
    latest_reconciliation: ReconciliationSummary | None
    uptime: Uptime


class Store:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock = utc_now) -> None:
        self._sessions = sessions
        self._clock = clock

    # -- customers ----------------------------------------------------------

    def create_customer(self, body: schemas.CustomerCreate) -> models.Customer:
        try:
            self._insert_customer(body)
        except sa.exc.IntegrityError:
            raise self._concurrent_write(body.customer_id) from None
        return self.get_customer(body.customer_id)

    @staticmethod
    def _concurrent_write(customer_id: str) -> Conflict:
        # The checks before the write passed, so another request wrote the same customer id or app
        # id between them and the commit.
        return Conflict(
            f"customer {customer_id!r} or one of its apps was written by another request at the same time: "
            "read the customer and retry"
        )

    def _insert_customer(self, body: schemas.CustomerCreate) -> None:
        now = self._clock()
        with self._sessions.begin() as session:
            if session.get(models.Customer, body.customer_id) is not None:
                raise Conflict(
                    f"customer {body.customer_id!r} already exists: change it with "
                    f"PATCH /v1/customers/{body.customer_id}",
                    field="customer_id",
                )
            self._check_apps_free(session, body.customer_id, body.app_ids)
            customer = models.Customer(
                customer_id=body.customer_id,
                company_name=body.company_name,
                pilot=body.pilot,
                kickoff_date=body.kickoff_date or now.date(),
                currency=body.currency,
                previous_monthly_cost=body.previous_monthly_cost,
                monthly_cost=body.monthly_cost,
                phase="discovery",
                created_at=now,
                updated_at=now,
            )
            customer.apps = [models.CustomerApp(app_id=app_id) for app_id in body.app_ids]
            customer.phase_changes = [
                models.PhaseChange(from_phase=None, to_phase="discovery", changed_at=now)
            ]
            session.add(customer)

    def _check_apps_free(self, session: Session, customer_id: str, app_ids: Iterable[str]) -> None:
        app_ids = list(app_ids)
        if not app_ids:
            return
        owners = session.execute(
            sa.select(models.CustomerApp.app_id, models.CustomerApp.customer_id).where(
                models.CustomerApp.app_id.in_(app_ids),
                models.CustomerApp.customer_id != customer_id,
            )
        ).all()
        if owners:
            app_id, owner = sorted(owners)[0]
            raise Conflict(
                f"app {app_id!r} already belongs to customer {owner!r}: an app has one owner, "
                f"so remove it from {owner!r} first",
                field="app_ids",
            )

    def _load_customer(self, session: Session, customer_id: str) -> models.Customer:
        customer = session.scalars(
            sa.select(models.Customer)
            .where(models.Customer.customer_id == customer_id)
            .options(selectinload(models.Customer.apps))
        ).one_or_none()
        if customer is None:
            raise NotFound(
                f"customer {customer_id!r} not found: list customers with GET /v1/customers",
                field="customer_id",
            )
        return customer

    def get_customer(self, customer_id: str) -> models.Customer:
        with self._sessions() as session:
            return self._load_customer(session, customer_id)

    def list_customers(
        self, *, pilot: bool | None = None, phase: str | None = None, limit: int = 100, after: str | None = None,
    ) -> tuple[list[models.Customer], str | None]:
        """Return customers ordered by id, and the id to pass as ``after`` for the next page."""
        query = sa.select(models.Customer).options(selectinload(models.Customer.apps))
        if pilot is not None:
            query = query.where(models.Customer.pilot == pilot)
        if phase is not None:
            query = query.where(models.Customer.phase == phase)
        if after is not None:
            query = query.where(models.Customer.customer_id > after)
        query = query.order_by(models.Customer.customer_id).limit(limit + 1)
        with self._sessions() as session:
            customers = list(session.scalars(query))
        next_after = None
        if len(customers) > limit:
            customers = customers[:limit]
            next_after = customers[-1].customer_id
        return customers, next_after

    def update_customer(self, customer_id: str, body: schemas.CustomerUpdate) -> models.Customer:
        changes = body.model_dump(exclude_unset=True)
        try:
            with self._sessions.begin() as session:
                customer = self._load_customer(session, customer_id)
                app_ids = changes.pop("app_ids", None)
                if app_ids is not None:
                    self._check_apps_free(session, customer_id, app_ids)
                    current = {app.app_id: app for app in customer.apps}
                    customer.apps = [current.get(app_id) or models.CustomerApp(app_id=app_id) for app_id in app_ids]
                for name, value in changes.items():
                    setattr(customer, name, value)
                customer.updated_at = self._clock()
        except sa.exc.IntegrityError:
            raise self._concurrent_write(customer_id) from None
        return self.get_customer(customer_id)

    def delete_customer(self, customer_id: str) -> None:
        with self._sessions.begin() as session:
            customer = self._load_customer(session, customer_id)
            session.delete(customer)

    def customer_app_ids(self, customer_id: str) -> list[str]:
        return [app.app_id for app in self.get_customer(customer_id).apps]

    # -- phases -------------------------------------------------------------

    def set_phase(self, customer_id: str, phase: str) -> bool:
        """Move the customer to ``phase`` and keep the change; return False if it was already there."""
        now = self._clock()
        with self._sessions.begin() as session:
            customer = self._load_customer(session, customer_id)
            if customer.phase == phase:
                return False
            session.add(
                models.PhaseChange(customer_id=customer_id, from_phase=customer.phase, to_phase=phase, changed_at=now)
            )
            customer.phase = phase
            customer.updated_at = now
        return True

    def phase_history(self, customer_id: str) -> list[models.PhaseChange]:
        with self._sessions() as session:
            self._load_customer(session, customer_id)
            return list(
                session.scalars(
                    sa.select(models.PhaseChange)
                    .where(models.PhaseChange.customer_id == customer_id)
                    .order_by(models.PhaseChange.changed_at, models.PhaseChange.id)
                )
            )

    # -- surveys ------------------------------------------------------------

    def add_survey(self, customer_id: str, body: schemas.SurveyCreate) -> models.Survey:
        if body.csat is not None:
            scale, answer, score = "csat", Decimal(body.csat), csat_to_percent(body.csat)
        else:
            scale, answer, score = "percent", body.score, body.score
        with self._sessions.begin() as session:
            self._load_customer(session, customer_id)
            survey = models.Survey(
                customer_id=customer_id, scale=scale, answer=answer, score=score,
                comment=body.comment, recorded_at=self._clock(),
            )
            session.add(survey)
        return survey

    def list_surveys(self, customer_id: str) -> list[models.Survey]:
        with self._sessions() as session:
            self._load_customer(session, customer_id)
            return list(
                session.scalars(
                    sa.select(models.Survey)
                    .where(models.Survey.customer_id == customer_id)
                    .order_by(models.Survey.recorded_at.desc(), models.Survey.id.desc())
                )
            )

    # -- tickets ------------------------------------------------------------

    def add_ticket(self, customer_id: str, body: schemas.TicketCreate) -> models.Ticket:
        now = self._clock()
        with self._sessions.begin() as session:
            self._load_customer(session, customer_id)
            ticket = models.Ticket(
                customer_id=customer_id, title=body.title, severity=body.severity, status=body.status,
                opened_at=now, closed_at=now if body.status == "closed" else None, updated_at=now,
            )
            session.add(ticket)
        return ticket

    def update_ticket(self, customer_id: str, ticket_id: int, body: schemas.TicketUpdate) -> models.Ticket:
        now = self._clock()
        with self._sessions.begin() as session:
            self._load_customer(session, customer_id)
            ticket = session.get(models.Ticket, ticket_id)
            if ticket is None or ticket.customer_id != customer_id:
                raise NotFound(
                    f"ticket {ticket_id} of customer {customer_id!r} not found: list them with "
                    f"GET /v1/customers/{customer_id}/tickets",
                    field="ticket_id",
                )
            changes = body.model_dump(exclude_unset=True)
            new_status = changes.get("status")
            if new_status == "closed" and ticket.status != "closed":
                ticket.closed_at = now
            elif new_status == "open":
                ticket.closed_at = None
            for name, value in changes.items():
                setattr(ticket, name, value)
            ticket.updated_at = now
        return ticket

    def list_tickets(self, customer_id: str, status: str | None = None) -> list[models.Ticket]:
        query = sa.select(models.Ticket).where(models.Ticket.customer_id == customer_id)
        if status is not None:
            query = query.where(models.Ticket.status == status)
        with self._sessions() as session:
            self._load_customer(session, customer_id)
            return list(session.scalars(query.order_by(models.Ticket.id)))

    # -- reconciliations ----------------------------------------------------

    def save_reconciliation(
        self,
        customer_id: str,
        *,
        source_format: str,
        compared: int,
        matched: int,
        accuracy_percent: Decimal | None,
        mismatches: list[dict],
    ) -> models.ReconciliationRun:
        with self._sessions.begin() as session:
            self._load_customer(session, customer_id)
            run = models.ReconciliationRun(
                customer_id=customer_id, created_at=self._clock(), source_format=source_format,
                compared=compared, matched=matched, accuracy_percent=accuracy_percent,
                mismatch_count=len(mismatches),
            )
            session.add(run)
            session.flush()
            if mismatches:
                session.execute(
                    sa.insert(models.ReconciliationMismatch),
                    [dict(mismatch, run_id=run.id) for mismatch in mismatches],
                )
        return run

    def list_reconciliations(self, customer_id: str) -> list[models.ReconciliationRun]:
        with self._sessions() as session:
            self._load_customer(session, customer_id)
            return list(
                session.scalars(
                    sa.select(models.ReconciliationRun)
                    .where(models.ReconciliationRun.customer_id == customer_id)
                    .order_by(models.ReconciliationRun.id.desc())
                )
            )

    def get_reconciliation(
        self, customer_id: str, run_id: int, *, limit: int, after: int | None = None,
    ) -> tuple[models.ReconciliationRun, list[models.ReconciliationMismatch], int | None]:
        """Return a run, one page of its mismatches and the id to pass as ``after`` for the next."""
        with self._sessions() as session:
            self._load_customer(session, customer_id)
            run = session.get(models.ReconciliationRun, run_id)
            if run is None or run.customer_id != customer_id:
                raise NotFound(
                    f"reconciliation run {run_id} of customer {customer_id!r} not found: list runs with "
                    f"GET /v1/customers/{customer_id}/reconciliations",
                    field="run_id",
                )
            query = sa.select(models.ReconciliationMismatch).where(models.ReconciliationMismatch.run_id == run_id)
            if after is not None:
                query = query.where(models.ReconciliationMismatch.id > after)
            mismatches = list(session.scalars(query.order_by(models.ReconciliationMismatch.id).limit(limit + 1)))
        next_after = None
        if len(mismatches) > limit:
            mismatches = mismatches[:limit]
            next_after = mismatches[-1].id
        return run, mismatches, next_after

    # -- ingestion polls ----------------------------------------------------

    def record_probe(self, ok: bool, error: str | None = None) -> None:
        now = self._clock()
        with self._sessions.begin() as session:
            session.add(models.IngestionProbe(probed_at=now, ok=ok, error=None if error is None else error[:200]))
            session.execute(sa.delete(models.IngestionProbe).where(models.IngestionProbe.probed_at < now - PROBE_RETENTION))

    def _uptime_since(self, session: Session, since: dt.datetime) -> Uptime:
        polls, successful = session.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(sa.case((models.IngestionProbe.ok, 1), else_=0)), 0),
            ).where(models.IngestionProbe.probed_at >= since)
        ).one()
        return Uptime(successful_polls=int(successful), polls=int(polls), since=since)

    # -- facts for status and metrics ---------------------------------------

    def load_facts(self, customer_id: str | None = None) -> list[CustomerFacts]:
        """Read everything the status of one customer, or of all, is computed from."""
        now = self._clock()
        with self._sessions() as session:
            query = sa.select(models.Customer).options(
                selectinload(models.Customer.apps), selectinload(models.Customer.phase_changes),
            ).order_by(models.Customer.customer_id)
            if customer_id is not None:
                self._load_customer(session, customer_id)
                query = query.where(models.Customer.customer_id == customer_id)
            customers = list(session.scalars(query))
            if not customers:
                return []
            scores = self._latest_scores(session, customer_id)
            survey_counts = dict(session.execute(
                self._count_by_customer(models.Survey, customer_id)
            ).all())
            open_tickets = dict(session.execute(
                self._count_by_customer(models.Ticket, customer_id).where(models.Ticket.status == "open")
            ).all())
            runs = self._latest_runs(session, customer_id)
            uptime_by_start: dict[dt.datetime, Uptime] = {}
            facts = []
            for customer in customers:
                since = max(
                    dt.datetime.combine(customer.kickoff_date, dt.time(0), tzinfo=dt.UTC),
                    now - PROBE_RETENTION,
                )
                if since not in uptime_by_start:
                    uptime_by_start[since] = self._uptime_since(session, since)
                facts.append(CustomerFacts(
                    customer_id=customer.customer_id,
                    company_name=customer.company_name,
                    pilot=customer.pilot,
                    kickoff_date=customer.kickoff_date,
                    currency=customer.currency,
                    previous_monthly_cost=customer.previous_monthly_cost,
                    monthly_cost=customer.monthly_cost,
                    phase=customer.phase,
                    app_ids=tuple(app.app_id for app in customer.apps),
                    phase_changes=tuple((change.to_phase, change.changed_at) for change in customer.phase_changes),
                    latest_scores=tuple(scores.get(customer.customer_id, ())),
                    survey_count=survey_counts.get(customer.customer_id, 0),
                    open_tickets=open_tickets.get(customer.customer_id, 0),
                    latest_reconciliation=runs.get(customer.customer_id),
                    uptime=uptime_by_start[since],
                ))
            return facts

    @staticmethod
    def _count_by_customer(model, only: str | None):
        query = sa.select(model.customer_id, sa.func.count()).group_by(model.customer_id)
        if only is not None:
            return query.where(model.customer_id == only)
        return query

    @staticmethod
    def _latest_scores(session: Session, only: str | None) -> dict[str, list[Decimal]]:
        rank = sa.func.row_number().over(
            partition_by=models.Survey.customer_id,
            order_by=(models.Survey.recorded_at.desc(), models.Survey.id.desc()),
        ).label("rank")
        ranked = sa.select(models.Survey.customer_id, models.Survey.score, rank)
        if only is not None:
            ranked = ranked.where(models.Survey.customer_id == only)
        ranked = ranked.subquery()
        rows = session.execute(
            sa.select(ranked.c.customer_id, ranked.c.score)
            .where(ranked.c.rank <= SATISFACTION_SURVEY_COUNT)
            .order_by(ranked.c.customer_id, ranked.c.rank)
        ).all()
        scores: dict[str, list[Decimal]] = {}
        for customer_id, score in rows:
            scores.setdefault(customer_id, []).append(score)
        return scores

    @staticmethod
    def _latest_runs(session: Session, only: str | None) -> dict[str, ReconciliationSummary]:
        latest = sa.select(
            models.ReconciliationRun.customer_id, sa.func.max(models.ReconciliationRun.id).label("run_id")
        ).group_by(models.ReconciliationRun.customer_id)
        if only is not None:
            latest = latest.where(models.ReconciliationRun.customer_id == only)
        latest = latest.subquery()
        runs = session.scalars(
            sa.select(models.ReconciliationRun).join(latest, models.ReconciliationRun.id == latest.c.run_id)
        )
        return {
            run.customer_id: ReconciliationSummary(
                run_id=run.id, created_at=run.created_at, compared=run.compared,
                matched=run.matched, accuracy_percent=run.accuracy_percent,
            )
            for run in runs
        }

    def ping(self) -> None:
        with self._sessions() as session:
            session.execute(sa.text("SELECT 1"))
