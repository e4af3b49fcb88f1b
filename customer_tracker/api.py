"""Routes of the tracker's API under ``/v1``.

Reads are open, and writes need ``Authorization: Bearer <admin token>``. FastAPI runs the
plain ``def`` routes in its thread pool, so their database calls stay off the event loop.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from customer_tracker import models, schemas
from customer_tracker.errors import InvalidInput, PayloadTooLarge, Unauthorized
from customer_tracker.reconcile import MAX_REFERENCE_BYTES
from customer_tracker.service import Tracker
from customer_tracker.status import format_money

MAX_MISMATCHES_IN_RESPONSE = 1000
MAX_PAGE_SIZE = 1000


def get_tracker(request: Request) -> Tracker:
    return request.app.state.tracker


def require_admin(request: Request) -> None:
    """Raise Unauthorized unless the request carries the admin token as a bearer token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing admin token: send the header 'Authorization: Bearer <token>'")
    expected = request.app.state.tracker.settings.admin_token
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized("unknown admin token: use the value of UNMOGROWP_ADMIN_TOKEN or of the admin-token file")


def valid_customer_id(customer_id: Annotated[str, Path(description="the customer's id")]) -> str:
    problem = schemas.customer_id_problem(customer_id)
    if problem:
        raise InvalidInput(problem, field="customer_id")
    return customer_id


TrackerDep = Annotated[Tracker, Depends(get_tracker)]
CustomerId = Annotated[str, Depends(valid_customer_id)]
Admin = [Depends(require_admin)]

router = APIRouter(prefix="/v1")


def _time(value) -> str | None:
    return None if value is None else value.isoformat()


def customer_document(customer: models.Customer) -> dict:
    return {
        "customer_id": customer.customer_id,
        "company_name": customer.company_name,
        "app_ids": [app.app_id for app in customer.apps],
        "pilot": customer.pilot,
        "kickoff_date": customer.kickoff_date.isoformat(),
        "currency": customer.currency,
        "previous_monthly_cost": format_money(customer.previous_monthly_cost),
        "monthly_cost": format_money(customer.monthly_cost),
        "phase": customer.phase,
        "created_at": _time(customer.created_at),
        "updated_at": _time(customer.updated_at),
    }


def survey_document(survey: models.Survey) -> dict:
    return {
        "survey_id": survey.id,
        "scale": survey.scale,
        "answer": float(survey.answer) if survey.scale == "percent" else int(survey.answer),
        "score_percent": float(survey.score),
        "comment": survey.comment,
        "recorded_at": _time(survey.recorded_at),
    }


def ticket_document(ticket: models.Ticket) -> dict:
    return {
        "ticket_id": ticket.id,
        "customer_id": ticket.customer_id,
        "title": ticket.title,
        "severity": ticket.severity,
        "status": ticket.status,
        "opened_at": _time(ticket.opened_at),
        "closed_at": _time(ticket.closed_at),
        "updated_at": _time(ticket.updated_at),
    }


def run_document(run: models.ReconciliationRun) -> dict:
    return {
        "run_id": run.id,
        "customer_id": run.customer_id,
        "created_at": _time(run.created_at),
        "format": run.source_format,
        "compared": run.compared,
        "matched": run.matched,
        "accuracy_percent": None if run.accuracy_percent is None else float(run.accuracy_percent),
        "mismatch_count": run.mismatch_count,
    }


def mismatch_document(mismatch) -> dict:
    fields = ("install_event_id", "app_id", "reason", "expected_network", "expected_campaign",
              "actual_status", "actual_network", "actual_campaign")
    if isinstance(mismatch, dict):
        return {name: mismatch.get(name) for name in fields}
    return {name: getattr(mismatch, name) for name in fields}


def phase_document(customer_id: str, tracker: Tracker) -> dict:
    history = tracker.store.phase_history(customer_id)
    return {
        "customer_id": customer_id,
        "phase": history[-1].to_phase if history else None,
        "history": [
            {"from_phase": change.from_phase, "to_phase": change.to_phase, "changed_at": _time(change.changed_at)}
            for change in history
        ],
    }


# -- customers ---------------------------------------------------------------


@router.post("/customers", status_code=status.HTTP_201_CREATED, dependencies=Admin, tags=["customers"])
def create_customer(body: schemas.CustomerCreate, tracker: TrackerDep, response: Response) -> dict:
    """Add a customer; it starts in the discovery phase."""
    customer = tracker.write(tracker.store.create_customer, body)
    response.headers["Location"] = f"/v1/customers/{customer.customer_id}"
    return customer_document(customer)


@router.get("/customers", tags=["customers"])
def list_customers(
    tracker: TrackerDep,
    pilot: Annotated[bool | None, Query(description="only pilot (true) or other (false) customers")] = None,
    phase: Annotated[schemas.Phase | None, Query(description="only customers in this phase")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="customers per page")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict:
    """List customers ordered by id, one page at a time."""
    if cursor is not None and schemas.customer_id_problem(cursor):
        raise InvalidInput(f"invalid cursor {cursor!r}: pass the next_cursor of the previous page", field="cursor")
    customers, next_cursor = tracker.store.list_customers(pilot=pilot, phase=phase, limit=limit, after=cursor)
    return {"items": [customer_document(customer) for customer in customers], "next_cursor": next_cursor}


@router.get("/customers/{customer_id}", tags=["customers"])
def get_customer(customer_id: CustomerId, tracker: TrackerDep) -> dict:
    return customer_document(tracker.store.get_customer(customer_id))


@router.patch("/customers/{customer_id}", dependencies=Admin, tags=["customers"])
def update_customer(customer_id: CustomerId, body: schemas.CustomerUpdate, tracker: TrackerDep) -> dict:
    """Change a customer's fields; ``app_ids`` replaces the whole list."""
    return customer_document(tracker.write(tracker.store.update_customer, customer_id, body))


@router.delete("/customers/{customer_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=Admin,
               tags=["customers"])
def delete_customer(customer_id: CustomerId, tracker: TrackerDep) -> Response:
    """Delete a customer with its history; its metric series disappear from the next scrape."""
    tracker.write(tracker.store.delete_customer, customer_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- phases ------------------------------------------------------------------


@router.put("/customers/{customer_id}/phase", dependencies=Admin, tags=["onboarding"])
def set_phase(customer_id: CustomerId, body: schemas.PhaseUpdate, tracker: TrackerDep) -> dict:
    """Move the customer to a phase; each change is kept with the server's time."""
    tracker.write(tracker.store.set_phase, customer_id, body.phase)
    return phase_document(customer_id, tracker)


@router.get("/customers/{customer_id}/phase", tags=["onboarding"])
def get_phase(customer_id: CustomerId, tracker: TrackerDep) -> dict:
    """Return the current phase and every change with its time."""
    return phase_document(customer_id, tracker)


# -- surveys -----------------------------------------------------------------


@router.post("/customers/{customer_id}/surveys", status_code=status.HTTP_201_CREATED, dependencies=Admin,
             tags=["satisfaction"])
def add_survey(customer_id: CustomerId, body: schemas.SurveyCreate, tracker: TrackerDep) -> dict:
    """Record a survey answer: ``score`` in percent (0-100) or ``csat`` on the 1-5 scale."""
    return survey_document(tracker.write(tracker.store.add_survey, customer_id, body))


@router.get("/customers/{customer_id}/surveys", tags=["satisfaction"])
def list_surveys(customer_id: CustomerId, tracker: TrackerDep) -> dict:
    """List the customer's surveys, newest first."""
    return {"items": [survey_document(survey) for survey in tracker.store.list_surveys(customer_id)],
            "next_cursor": None}


# -- tickets -----------------------------------------------------------------


@router.post("/customers/{customer_id}/tickets", status_code=status.HTTP_201_CREATED, dependencies=Admin,
             tags=["support"])
def add_ticket(customer_id: CustomerId, body: schemas.TicketCreate, tracker: TrackerDep) -> dict:
    return ticket_document(tracker.write(tracker.store.add_ticket, customer_id, body))


@router.patch("/customers/{customer_id}/tickets/{ticket_id}", dependencies=Admin, tags=["support"])
def update_ticket(
    customer_id: CustomerId,
    ticket_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: schemas.TicketUpdate,
    tracker: TrackerDep,
) -> dict:
    """Change a ticket's status (open or closed), severity or title."""
    return ticket_document(tracker.write(tracker.store.update_ticket, customer_id, ticket_id, body))


@router.get("/customers/{customer_id}/tickets", tags=["support"])
def list_tickets(
    customer_id: CustomerId,
    tracker: TrackerDep,
    status_filter: Annotated[schemas.TicketStatus | None, Query(alias="status")] = None,
) -> dict:
    tickets = tracker.store.list_tickets(customer_id, status_filter)
    return {"items": [ticket_document(ticket) for ticket in tickets], "next_cursor": None}


# -- reconciliations ---------------------------------------------------------


async def read_limited_body(request: Request) -> bytes:
    """Read the request body, raising PayloadTooLarge past MAX_REFERENCE_BYTES."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REFERENCE_BYTES:
        raise PayloadTooLarge(
            f"the reference is {declared} bytes, over the limit of {MAX_REFERENCE_BYTES} bytes: "
            "split it into several uploads"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REFERENCE_BYTES:
            raise PayloadTooLarge(
                f"the reference is over the limit of {MAX_REFERENCE_BYTES} bytes: split it into several uploads"
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/customers/{customer_id}/reconciliations",
    status_code=status.HTTP_201_CREATED,
    dependencies=Admin,
    tags=["reconciliation"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"},
                             "example": "install_event_id,network,campaign\ni-1,adnet,spring\ni-2,,\n"},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}},
                                     "example": [{"install_event_id": "i-1", "network": "adnet"}]},
            },
        }
    },
)
async def add_reconciliation(customer_id: CustomerId, request: Request, tracker: TrackerDep) -> dict:
    """Compare the customer's reference attributions with the ingestion service's records.

    The body is CSV (``install_event_id,network[,campaign]``, optional header, optional
    ``app_id`` column) or JSON. The run is kept, and its accuracy becomes the customer's.
    """
    body = await read_limited_body(request)
    run, outcome = await tracker.reconcile(customer_id, body, request.headers.get("content-type", ""))
    document = run_document(run)
    document["mismatches"] = [mismatch_document(m) for m in outcome.mismatches[:MAX_MISMATCHES_IN_RESPONSE]]
    document["mismatches_truncated"] = len(outcome.mismatches) > MAX_MISMATCHES_IN_RESPONSE
    return document


@router.get("/customers/{customer_id}/reconciliations", tags=["reconciliation"])
def list_reconciliations(customer_id: CustomerId, tracker: TrackerDep) -> dict:
    """List the customer's reconciliation runs, newest first."""
    runs = tracker.store.list_reconciliations(customer_id)
    return {"items": [run_document(run) for run in runs], "next_cursor": None}


@router.get("/customers/{customer_id}/reconciliations/{run_id}", tags=["reconciliation"])
def get_reconciliation(
    customer_id: CustomerId,
    run_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    tracker: TrackerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="mismatches per page")] = MAX_PAGE_SIZE,
    cursor: Annotated[int | None, Query(ge=1, description="next_cursor of the previous page")] = None,
) -> dict:
    """Return one run with a page of its mismatches."""
    run, mismatches, next_cursor = tracker.store.get_reconciliation(customer_id, run_id, limit=limit, after=cursor)
    document = run_document(run)
    document["mismatches"] = [mismatch_document(mismatch) for mismatch in mismatches]
    document["next_cursor"] = None if next_cursor is None else str(next_cursor)
    return document


# -- status ------------------------------------------------------------------


@router.get("/customers/{customer_id}/status", tags=["status"])
def customer_status(customer_id: CustomerId, tracker: TrackerDep) -> dict:
    """Return every figure of the customer, its success criteria and its health score."""
    return tracker.customer_status(customer_id)


@router.get("/status", tags=["status"])
def pilot_summary(tracker: TrackerDep) -> dict:
    """Return the pilot counts and a one-line status per customer."""
    return tracker.summary()
