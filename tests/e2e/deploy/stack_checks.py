"""Queries against the local Prometheus shared by the end-to-end deploy tests."""

from __future__ import annotations

import json
import time

from tests.integration.deploy.deploy_files import DASHBOARD_DIR
from tests.integration.deploy.local_stack import LocalStack


def wait_until(condition, timeout: float, description: str):
    """Return the first truthy result of ``condition()``; raise AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{description} not reached within {timeout} s; last result: {last}")


def query_result(stack: LocalStack, expression: str) -> list:
    """Return the result of an instant query; fail the test when Prometheus reports an error."""
    body = stack.query(expression)
    assert body["status"] == "success", f"{expression}: {body.get('error')}"
    return body["data"]["result"]


def present_metric_names(stack: LocalStack) -> set[str]:
    return {item["metric"]["__name__"] for item in query_result(stack, 'group by (__name__) ({__name__=~".+"})')}


def dashboard_expressions(file_name: str = "*.json") -> list[tuple[str, str, str]]:
    """Return (dashboard file, panel title, expression) of every query of the matching dashboards."""
    found = []
    for path in sorted(DASHBOARD_DIR.glob(file_name)):
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            for query in panel["targets"]:
                found.append((path.name, panel["title"], query["expr"]))
    return found
