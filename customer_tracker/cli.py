"""``unmogrowp customers``: manage pilot customers through the tracker's HTTP API.

Every command is one or a few API calls; the tracker does the checks. Writes send the
admin token from ``UNMOGROWP_ADMIN_TOKEN``, or from the ``admin-token`` file in the data
folder that a local service wrote. Exit status: 0 success, 1 the API rejected the request,
2 bad options or no token, 3 the tracker could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from customer_tracker.scoring import PHASES
from services.config import ConfigError, default_data_dir, resolve_admin_token

DEFAULT_URL = "http://127.0.0.1:8084"
URL_ENV = "UNMOGROWP_TRACKER_URL"
DEFAULT_TIMEOUT_SECONDS = 60.0

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class CommandError(Exception):
    def __init__(self, message: str, exit_code: int, status: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        # The tracker's HTTP status when it rejected the request, else None.
        self.status = status


# -- arguments -------------------------------------------------------------------


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show an option's default in its help, unless it has none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or "default:" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = HelpFormatter
    parser.add_argument("--url", default=os.environ.get(URL_ENV, DEFAULT_URL),
                        help=f"base URL of the tracker (environment: {URL_ENV})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
                        help="seconds to wait for each API response")
    parser.add_argument("--json", action="store_true", help="print the API's JSON responses instead of text")
    commands = parser.add_subparsers(dest="customers_command", required=True, metavar="COMMAND")
    formatter = HelpFormatter

    add = commands.add_parser("add", help="add a customer", description="Add a customer; it starts in discovery.",
                              formatter_class=formatter)
    add.add_argument("customer_id", help="id: 1-64 letters, digits, '.', '_' or '-'")
    add.add_argument("--company", required=True, help="company name")
    _customer_options(add, defaults=True)

    update = commands.add_parser("update", help="change a customer's fields", formatter_class=formatter)
    update.add_argument("customer_id")
    update.add_argument("--company", help="new company name")
    _customer_options(update, defaults=False)

    delete = commands.add_parser("delete", help="delete a customer with its history", formatter_class=formatter)
    delete.add_argument("customer_id")

    listing = commands.add_parser("list", help="list customers", formatter_class=formatter)
    listing.add_argument("--pilot", action=argparse.BooleanOptionalAction, default=None,
                         help="only pilot customers (--pilot) or only others (--no-pilot); default: all")
    listing.add_argument("--phase", choices=PHASES, help="only customers in this phase")

    phase = commands.add_parser("phase", help="move a customer to an onboarding phase", formatter_class=formatter)
    phase.add_argument("customer_id")
    phase.add_argument("phase", choices=PHASES)

    survey = commands.add_parser("survey", help="record a satisfaction survey", formatter_class=formatter)
    survey.add_argument("customer_id")
    scale = survey.add_mutually_exclusive_group(required=True)
    scale.add_argument("--score", help="satisfaction in percent, 0 to 100")
    scale.add_argument("--csat", type=int, help="CSAT response on the 1-5 scale")
    survey.add_argument("--comment", help="free text stored with the survey")

    ticket = commands.add_parser("ticket", help="open, close or list support tickets", formatter_class=formatter)
    ticket_commands = ticket.add_subparsers(dest="ticket_command", required=True, metavar="ACTION")
    ticket_open = ticket_commands.add_parser("open", help="open a ticket", formatter_class=formatter)
    ticket_open.add_argument("customer_id")
    ticket_open.add_argument("--title", required=True, help="one-line summary")
    ticket_open.add_argument("--severity", choices=("low", "medium", "high", "critical"), default="medium",
                             help="severity of the ticket")
    for action, help_text in (("close", "close a ticket"), ("reopen", "open a closed ticket again")):
        change = ticket_commands.add_parser(action, help=help_text, formatter_class=formatter)
        change.add_argument("customer_id")
        change.add_argument("ticket_id", type=int)
    ticket_list = ticket_commands.add_parser("list", help="list a customer's tickets", formatter_class=formatter)
    ticket_list.add_argument("customer_id")
    ticket_list.add_argument("--status", choices=("open", "closed"), help="only tickets with this status")

    reconcile = commands.add_parser(
        "reconcile", help="compare the customer's reference attributions with ours", formatter_class=formatter,
        description="Upload a CSV (install_event_id,network[,campaign], optional header and app_id column) "
        "or JSON file of the attributions the customer's previous platform made.",
    )
    reconcile.add_argument("customer_id")
    reconcile.add_argument("file", type=Path, help="the reference file")
    reconcile.add_argument("--format", choices=("csv", "json"),
                           help="file format; default: from the file name's extension, else csv")
    reconcile.add_argument("--show-mismatches", type=int, default=20, metavar="N",
                           help="mismatches to print, at most")

    status = commands.add_parser("status", help="show a customer's status, or a summary of all",
                                 formatter_class=formatter)
    status.add_argument("customer_id", nargs="?", help="customer to show; leave out for all customers")

    _accept_common_options_anywhere(commands)


def _accept_common_options_anywhere(commands) -> None:
    """Let --url, --timeout and --json also follow the command, as in `customers list --url URL`.

    The copies default to SUPPRESS, so a value given before the command is kept when none follows it.
    """
    for subparser in commands.choices.values():
        subparser.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        subparser.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        subparser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        for action in subparser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_common_options_anywhere(action)


def _customer_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    parser.add_argument("--app", dest="app_ids", action="append", metavar="APP_ID",
                        help="an app of the ingestion service owned by the customer; repeat for several"
                        + ("" if defaults else " (replaces the whole list)"))
    parser.add_argument("--pilot", action=argparse.BooleanOptionalAction, default=True if defaults else None,
                        help="whether the customer is in the pilot programme")
    parser.add_argument("--kickoff", metavar="YYYY-MM-DD", help="pilot kickoff day" + (" (default: today, UTC)" if defaults else ""))
    parser.add_argument("--currency", default="USD" if defaults else None, help="ISO 4217 code of both costs")
    parser.add_argument("--previous-monthly-cost", metavar="AMOUNT",
                        help="monthly cost of the previous attribution platform, a decimal such as 1200.00")
    parser.add_argument("--monthly-cost", metavar="AMOUNT", help="monthly cost of UnMoGrowP, a decimal such as 700.00")


# -- HTTP ------------------------------------------------------------------------------


class Api:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._client.close()

    def _admin_headers(self) -> dict[str, str]:
        if self._token is None:
            try:
                self._token, _source = resolve_admin_token(default_data_dir(), create=False)
            except ConfigError as error:
                raise CommandError(str(error), EXIT_USAGE) from None
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if write:
            headers.update(self._admin_headers())
        try:
            response = self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as error:
            raise CommandError(
                f"cannot reach the tracker at {self.url} ({type(error).__name__}: {error}): start it with "
                f"`unmogrowp tracker` or pass --url", EXIT_UNREACHABLE,
            ) from None
        if response.status_code >= 400:
            raise CommandError(_error_message(response), EXIT_REJECTED, response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail")
        if message:
            return f"HTTP {response.status_code}: {message}"
    return f"HTTP {response.status_code}: {response.text[:500]}"


# -- commands -------------------------------------------------------------------------


def _customer_body(args: argparse.Namespace, *, create: bool) -> dict:
    body: dict[str, Any] = {}
    if create:
        body["customer_id"] = args.customer_id
    if args.company is not None:
        body["company_name"] = args.company
    names = {"app_ids": "app_ids", "pilot": "pilot", "kickoff": "kickoff_date", "currency": "currency",
             "previous_monthly_cost": "previous_monthly_cost", "monthly_cost": "monthly_cost"}
    for option, field in names.items():
        value = getattr(args, option)
        if value is not None:
            body[field] = value
    return body


def _print_customer(customer: dict) -> None:
    apps = ", ".join(customer["app_ids"]) or "none"
    print(f"{customer['customer_id']}: {customer['company_name']}")
    print(f"  pilot: {'yes' if customer['pilot'] else 'no'}   phase: {customer['phase']}   "
          f"kickoff: {customer['kickoff_date']}")
    print(f"  apps: {apps}")
    print(f"  monthly cost: {customer['monthly_cost'] or '-'} {customer['currency']} "
          f"(previously {customer['previous_monthly_cost'] or '-'})")


def _figure(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:g}"
    return f"{value}{unit}"


def _print_status(status: dict) -> None:
    launch = status["time_to_launch"]
    latency = status["api_latency_ms"]
    print(f"{status['customer_id']}: {status['company_name']} ({'pilot' if status['pilot'] else 'not a pilot'})")
    print(f"  phase:            {status['phase']}")
    print(f"  days to launch:   {launch['days']:g} ({launch['colour']}{'' if launch['launched'] else ', not launched yet'})")
    print(f"  open tickets:     {status['open_tickets']}")
    print(f"  satisfaction:     {_figure(status['satisfaction']['score_percent'], ' %')}")
    print(f"  cost savings:     {_figure(status['cost_savings']['percent'], ' %')}")
    print(f"  accuracy:         {_figure(status['attribution_accuracy']['percent'], ' %')}")
    stale = " (stale)" if latency["stale"] and latency["p95"] is not None else ""
    print(f"  API latency:      p50 {_figure(latency['p50'], ' ms')}, p95 {_figure(latency['p95'], ' ms')}, "
          f"p99 {_figure(latency['p99'], ' ms')}{stale}")
    print(f"  uptime:           {_figure(status['uptime']['percent'], ' %')}")
    print(f"  health score:     {status['health_score']:g} / 100")
    criteria = status["success_criteria"]
    print(f"  success criteria: {'all met' if criteria['met'] else 'not all met'}")
    for criterion in criteria["criteria"]:
        mark = "met" if criterion["met"] else "NOT met"
        target = f"{criterion['operator']} {criterion['threshold']:g} {criterion['unit']}"
        print(f"    {criterion['name']:<22} {_figure(criterion['value']):>10}  target {target:<14} {mark}: "
              f"{criterion['judged_on']}")


def _print_summary(summary: dict) -> None:
    print(f"pilot customers: {summary['total_pilot_customers']}, successful: {summary['successful_pilot_customers']}")
    for line in summary["customers"]:
        print(f"  {line['customer_id']:<24} {line['phase']:<10} day {line['days_to_launch']:>6g} "
              f"({line['launch_colour']:<6}) tickets {line['open_tickets']:>3}  "
              f"satisfaction {_figure(line['satisfaction_percent'], ' %'):>8}  health {line['health_score']:>5g}"
              f"{'  successful' if line['successful_pilot'] else ''}")


def _reference_media_type(args: argparse.Namespace) -> str:
    file_format = args.format or ("json" if args.file.suffix.lower() == ".json" else "csv")
    return "application/json" if file_format == "json" else "text/csv"


def _run_command(api: Api, args: argparse.Namespace) -> Any:
    command = args.customers_command
    customer_path = "/v1/customers/" + quote(getattr(args, "customer_id", None) or "", safe="")
    if command == "add":
        return api.request("POST", "/v1/customers", write=True, json=_customer_body(args, create=True)), _print_customer
    if command == "update":
        return api.request("PATCH", customer_path, write=True, json=_customer_body(args, create=False)), _print_customer

    if command == "delete":
        api.request("DELETE", customer_path, write=True)
        return {"deleted": args.customer_id}, lambda document: print(f"deleted {document['deleted']}")
    if command == "list":
        return _list_all(api, args), _print_customer_list

    if command == "phase":
        document = api.request("PUT", customer_path + "/phase", write=True, json={"phase": args.phase})
        return document, lambda d: print(f"{d['customer_id']} is in phase {d['phase']}")
    if command == "survey":
        body: dict[str, Any] = {"score": args.score} if args.score is not None else {"csat": args.csat}
        if args.comment is not None:
            body["comment"] = args.comment
        document = api.request("POST", customer_path + "/surveys", write=True, json=body)
        return document, lambda d: print(f"survey {d['survey_id']} recorded: {d['score_percent']:g} %")
    if command == "ticket":
        return _ticket_command(api, args, customer_path)

    if command == "reconcile":
        try:
            content = args.file.read_bytes()
        except OSError as error:
            raise CommandError(f"cannot read {args.file}: {error.strerror}", EXIT_USAGE) from None
        document = api.request("POST", customer_path + "/reconciliations", write=True, content=content,
                               headers={"Content-Type": _reference_media_type(args)})
        return document, lambda d: _print_reconciliation(d, args.show_mismatches)

    if command == "status":
        if args.customer_id is None:
            return api.request("GET", "/v1/status"), _print_summary
        return api.request("GET", customer_path + "/status"), _print_status
    raise CommandError(f"unknown command {command!r}", EXIT_USAGE)


def _ticket_command(api: Api, args: argparse.Namespace, customer_path: str):
    action = args.ticket_command
    if action == "open":
        document = api.request("POST", customer_path + "/tickets", write=True,
                               json={"title": args.title, "severity": args.severity})
        return document, lambda d: print(f"ticket {d['ticket_id']} opened ({d['severity']}): {d['title']}")
    if action in ("close", "reopen"):
        status = "closed" if action == "close" else "open"
        try:
            document = api.request(
                "PATCH", f"{customer_path}/tickets/{args.ticket_id}", write=True, json={"status": status}
            )
        except CommandError as error:
            if error.status != 404:
                raise
            raise CommandError(
                f"{error}; from the command line: unmogrowp customers ticket list {args.customer_id}",
                error.exit_code, error.status,
            ) from None
        return document, lambda d: print(f"ticket {d['ticket_id']} is {d['status']}")
    params = {"status": args.status} if args.status else None
    document = api.request("GET", customer_path + "/tickets", params=params)
    return document, _print_tickets


def _print_tickets(document: dict) -> None:
    if not document["items"]:
        print("no tickets")
    for ticket in document["items"]:
        print(f"{ticket['ticket_id']:>6}  {ticket['status']:<6}  {ticket['severity']:<8}  {ticket['title']}")


def _print_reconciliation(run: dict, show: int) -> None:
    print(f"run {run['run_id']}: {run['matched']} of {run['compared']} installs matched, "
          f"accuracy {run['accuracy_percent']:g} %")
    for mismatch in run["mismatches"][:show]:
        print(f"  {mismatch['install_event_id']}: {mismatch['reason']} ({_mismatch_detail(mismatch)})")
    if run["mismatch_count"] > show:
        print(f"  ... and {run['mismatch_count'] - show} more; see GET /v1/customers/{run['customer_id']}"
              f"/reconciliations/{run['run_id']}")


def _mismatch_detail(mismatch: dict) -> str:
    """Return what differs: the campaigns for campaign_differs, else the networks."""
    if mismatch["reason"] == "campaign_differs":
        return (f"network {mismatch['actual_network']}: expected campaign {mismatch.get('expected_campaign') or '-'}, "
                f"got {mismatch.get('actual_campaign') or '-'}")
    actual = mismatch["actual_network"] or mismatch["actual_status"] or "-"
    return f"expected network {mismatch['expected_network'] or 'organic'}, got {actual}"


def _list_all(api: Api, args: argparse.Namespace) -> dict:
    items: list[dict] = []
    params: dict[str, Any] = {"limit": 1000}
    if args.pilot is not None:
        params["pilot"] = "true" if args.pilot else "false"
    if args.phase is not None:
        params["phase"] = args.phase
    while True:
        page = api.request("GET", "/v1/customers", params=params)
        items.extend(page["items"])
        if not page["next_cursor"]:
            return {"items": items, "next_cursor": None}
        params["cursor"] = page["next_cursor"]


def _print_customer_list(document: dict) -> None:
    if not document["items"]:
        print("no customers")
    for customer in document["items"]:
        print(f"{customer['customer_id']:<24} {customer['phase']:<10} {'pilot' if customer['pilot'] else '-':<6} "
              f"{customer['company_name']}")


def run(args: argparse.Namespace) -> int:
    api = Api(args.url, args.timeout)
    try:
        document, printer = _run_command(api, args)
    except CommandError as error:
        print(f"unmogrowp customers: {error}", file=sys.stderr)
        return error.exit_code
    finally:
        api.close()
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        printer(document)
    return EXIT_OK
