"""free_port, the tests' helper for loopback ports: no port is returned twice in one run."""

from __future__ import annotations

import socket

import pytest

from tests.support import services


def test_free_port_skips_ports_already_returned(monkeypatch):
    offered = iter([50001, 50001, 50002])
    monkeypatch.setattr(services, "_probe_port", lambda host: next(offered))
    monkeypatch.setattr(services, "_returned_ports", set())

    assert services.free_port() == 50001
    assert services.free_port() == 50002


def test_free_port_gives_up_after_repeats(monkeypatch):
    monkeypatch.setattr(services, "_probe_port", lambda host: 50001)
    monkeypatch.setattr(services, "_returned_ports", {50001})

    with pytest.raises(RuntimeError, match="after 100 tries"):
        services.free_port()


def test_free_port_can_be_bound():
    port = services.free_port()

    assert port in services._returned_ports
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
