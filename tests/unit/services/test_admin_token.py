"""Where the admin token comes from, and what a child of `unmogrowp up` logs about it."""

from __future__ import annotations

import pytest

from services.config import ADMIN_TOKEN_ENV, ADMIN_TOKEN_SOURCE_ENV, resolve_admin_token, token_environment

TOKEN = "t" * 40


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    monkeypatch.delenv(ADMIN_TOKEN_SOURCE_ENV, raising=False)


def test_token_from_file_named(tmp_path):
    (tmp_path / "admin-token").write_text(TOKEN + "\n")

    assert resolve_admin_token(tmp_path) == (TOKEN, f"file {tmp_path / 'admin-token'}")


def test_token_from_environment_named(tmp_path, monkeypatch):
    monkeypatch.setenv(ADMIN_TOKEN_ENV, TOKEN)

    assert resolve_admin_token(tmp_path) == (TOKEN, f"environment variable {ADMIN_TOKEN_ENV}")


def test_child_names_the_supervisors_source(tmp_path, monkeypatch):
    (tmp_path / "admin-token").write_text(TOKEN + "\n")
    token, source = resolve_admin_token(tmp_path)
    for name, value in token_environment(token, source, "unmogrowp up").items():
        monkeypatch.setenv(name, value)

    # The child reads the variable but reports the file its supervisor read.
    assert resolve_admin_token(tmp_path / "elsewhere", create=False) == (
        TOKEN, f"file {tmp_path / 'admin-token'}, passed on by unmogrowp up")
