"""Validation of request bodies and database URLs."""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from customer_tracker import db, schemas
from customer_tracker.status import format_money


@pytest.mark.parametrize("customer_id", ["acme", "A", "acme-games_2.eu", "a" * 64])
def test_customer_id_accepted(customer_id):
    assert schemas.customer_id_problem(customer_id) is None


@pytest.mark.parametrize("customer_id", ["", 'ac"me', "ac'me", "ac\nme", "ac me", "-acme", "a" * 65, "acmé", "a/b"])
def test_customer_id_rejected(customer_id):
    assert "invalid customer_id" in schemas.customer_id_problem(customer_id)
    with pytest.raises(ValidationError):
        schemas.CustomerCreate(customer_id=customer_id, company_name="x")


def test_money_parsed_exactly():
    body = schemas.CustomerCreate.model_validate_json(
        '{"customer_id": "a", "company_name": "x", "previous_monthly_cost": 0.1, "monthly_cost": "12.3456"}'
    )
    assert body.previous_monthly_cost == Decimal("0.1")
    assert body.monthly_cost == Decimal("12.3456")


@pytest.mark.parametrize("amount", ['"-0.01"', '"1.23456"', '"NaN"', '"Infinity"', '"100000000000000"', '"abc"'])
def test_money_rejected(amount):
    with pytest.raises(ValidationError):
        schemas.CustomerCreate.model_validate_json(f'{{"customer_id": "a", "company_name": "x", "monthly_cost": {amount}}}')


def test_survey_needs_one_scale():
    assert schemas.SurveyCreate(score=Decimal("99.5")).score == Decimal("99.5")
    assert schemas.SurveyCreate(csat=1).csat == 1
    for bad in ({}, {"score": 50, "csat": 3}, {"score": 100.001}, {"csat": 0}, {"csat": "5"}):
        with pytest.raises(ValidationError):
            schemas.SurveyCreate.model_validate(bad)


def test_update_rejects_null_for_required_field():
    with pytest.raises(ValidationError, match="company_name cannot be null"):
        schemas.CustomerUpdate.model_validate({"company_name": None})
    assert schemas.CustomerUpdate.model_validate({"monthly_cost": None}).model_fields_set == {"monthly_cost"}


@pytest.mark.parametrize(
    ("value", "text"), [(Decimal("1200"), "1200.00"), (Decimal("0.5000"), "0.50"), (Decimal("12.3450"), "12.345"),
                        (Decimal("-3.1"), "-3.10"), (None, None)],
)
def test_format_money(value, text):
    assert format_money(value) == text


def test_database_urls():
    assert db.normalize_url("postgresql://u@h:5432/d").drivername == "postgresql+psycopg"
    assert db.normalize_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert db.normalize_url("sqlite:///var/tracker.db").database == "var/tracker.db"
    assert db.describe_url(db.normalize_url("postgresql://u:secret@h/d")) == "postgresql+psycopg://u:***@h/d"
    for bad in ("mysql://u@h/d", "not a url", "sqlite+aiosqlite:///x.db"):
        with pytest.raises(db.DatabaseUrlError):
            db.normalize_url(bad)
    with pytest.raises(db.DatabaseUrlError, match="in-memory"):
        db.create_database_engine("sqlite://")


def test_sqlite_folder_created(tmp_path):
    engine = db.create_database_engine(f"sqlite:///{tmp_path / 'deep' / 'folder' / 'tracker.db'}")
    db.ping(engine)
    engine.dispose()
    assert (tmp_path / "deep" / "folder" / "tracker.db").exists()
