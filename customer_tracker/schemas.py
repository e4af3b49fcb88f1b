"""Request bodies of the tracker's API, validated with pydantic.

Every check runs before anything is written, so a rejected request changes nothing. A
customer id becomes a Prometheus label and a URL path segment, so it is limited to letters,
digits, '.', '_' and '-'.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from customer_tracker.scoring import PHASES

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CUSTOMER_ID_RE = re.compile(CUSTOMER_ID_PATTERN)
MAX_APPS_PER_CUSTOMER = 100
MONEY_DECIMAL_PLACES = 4
MAX_MONEY = Decimal("99999999999999")  # fits NUMERIC(18, 4)

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

Phase = Literal["discovery", "setup", "launch", "live"]
Severity = Literal["low", "medium", "high", "critical"]
TicketStatus = Literal["open", "closed"]

assert PHASES == Phase.__args__  # the scoring module and the API must agree on the phases


def customer_id_problem(value: str) -> str | None:
    """Return why ``value`` is not a valid customer id, or None when it is valid."""
    if CUSTOMER_ID_RE.match(value):
        return None
    return (
        f"invalid customer_id {value!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"
    )


def _check_customer_id(value: str) -> str:
    problem = customer_id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _check_printable(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty or only spaces")
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters such as newlines or tabs")
    return value


def _check_app_ids(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        duplicates = sorted({value for value in values if values.count(value) > 1})
        raise ValueError(f"app ids must be unique, got {duplicates} more than once")
    return values


def _check_money(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite amount")
    if value < 0:
        raise ValueError("must not be negative")
    if value > MAX_MONEY:
        raise ValueError(f"must be at most {MAX_MONEY}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_DECIMAL_PLACES:
        raise ValueError(f"has more than {MONEY_DECIMAL_PLACES} decimal places; round it yourself")
    return value


def _check_currency(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ValueError("must be an ISO 4217 code of three capital letters, such as USD or EUR")
    return value


CustomerId = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_customer_id)]
CompanyName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_check_printable)]
AppId = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_check_printable)]
AppIds = Annotated[list[AppId], Field(max_length=MAX_APPS_PER_CUSTOMER), AfterValidator(_check_app_ids)]
Money = Annotated[Decimal, AfterValidator(_check_money)]
Currency = Annotated[str, AfterValidator(_check_currency)]
Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_check_printable)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strict=True)


class CustomerCreate(_Body):
    customer_id: CustomerId
    company_name: CompanyName
    app_ids: AppIds = []
    pilot: bool = Field(default=True, description="whether the customer is in the pilot programme")
    kickoff_date: dt.date | None = Field(default=None, description="pilot kickoff day; default: today (UTC)")
    currency: Currency = Field(default="USD", description="ISO 4217 code of both costs")
    previous_monthly_cost: Money | None = Field(
        default=None, description="monthly cost of the customer's previous attribution platform"
    )
    monthly_cost: Money | None = Field(default=None, description="monthly cost of UnMoGrowP for the customer")


class CustomerUpdate(_Body):
    company_name: CompanyName | None = None
    app_ids: AppIds | None = None
    pilot: bool | None = None
    kickoff_date: dt.date | None = None
    currency: Currency | None = None
    previous_monthly_cost: Money | None = None
    monthly_cost: Money | None = None

    @model_validator(mode="after")
    def _reject_null_required(self) -> CustomerUpdate:
        for name in ("company_name", "app_ids", "pilot", "kickoff_date", "currency"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null: leave it out to keep the current value")
        return self


class PhaseUpdate(_Body):
    phase: Phase


class SurveyCreate(_Body):
    score: Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)] | None = Field(
        default=None, description="satisfaction in percent, 0 to 100"
    )
    csat: Annotated[int, Field(ge=1, le=5, strict=True)] | None = Field(
        default=None, description="CSAT response on the 1-5 scale"
    )
    comment: Annotated[str, Field(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _one_scale(self) -> SurveyCreate:
        if (self.score is None) == (self.csat is None):
            raise ValueError("give exactly one of score (0-100) or csat (1-5)")
        return self


class TicketCreate(_Body):
    title: Title
    severity: Severity = "medium"
    status: TicketStatus = "open"


class TicketUpdate(_Body):
    title: Title | None = None
    severity: Severity | None = None
    status: TicketStatus | None = None

    @model_validator(mode="after")
    def _reject_null(self) -> TicketUpdate:
        for name in ("title", "severity", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null: leave it out to keep the current value")
        return self
