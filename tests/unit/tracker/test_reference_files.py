"""Parsing reference attribution files and comparing them with attribution records."""

from decimal import Decimal

import pytest

from customer_tracker import reconcile
from customer_tracker.errors import InvalidInput, UnsupportedMediaType
from customer_tracker.reconcile import IngestedAttribution, ReferenceRow


def _rows(body: bytes, content_type: str = "text/csv"):
    rows, _format = reconcile.parse_reference(body, content_type)
    return [(row.install_event_id, row.network, row.campaign, row.app_id) for row in rows]


def test_csv_without_header():
    assert _rows(b"i-1,AdNet,spring\ni-2,,\ni-3,Other\n") == [
        ("i-1", "AdNet", "spring", None), ("i-2", None, None, None), ("i-3", "Other", None, None),
    ]


def test_csv_header_any_order_with_app():
    body = b"\xef\xbb\xbfNetwork,app_id,install_event_id\r\nAdNet,a.ios,i-1\r\n\r\n,a.ios,i-2\r\n"
    assert _rows(body) == [("i-1", "AdNet", None, "a.ios"), ("i-2", None, None, "a.ios")]


def test_csv_quoted_fields_and_spaces():
    assert _rows(b'" i-1 ","Ad, Net"," spring "\n') == [("i-1", "Ad, Net", "spring", None)]


def test_json_array_and_items_object():
    array = b'[{"install_event_id": "i-1", "network": "AdNet", "campaign": null}]'
    assert _rows(array, "application/json") == [("i-1", "AdNet", None, None)]
    wrapped = b'{"items": [{"install_event_id": "i-2", "network": null, "app_id": "a.ios"}]}'
    assert _rows(wrapped, "application/json; charset=utf-8") == [("i-2", None, None, "a.ios")]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "text/csv", "the reference has no rows"),
        (b"\n\n", "text/csv", "the reference has no rows"),
        (b"i-1\n", "text/csv", "line 1: expected the columns install_event_id,network,campaign"),
        (b"i-1,a,b,c\n", "text/csv", "line 1: expected the columns"),
        (b"i-1,a\n,b\n", "text/csv", "line 2: install_event_id is missing or empty"),
        (b"i-1,a\ni-2,b\ni-1,c\n", "text/csv", "line 3: install 'i-1' appears again (first at line 1)"),
        (b"install_event_id,install_event_id,network\n", "text/csv", "a column appears twice"),
        (b"install_event_id,campaign\ni-1,x\n", "text/csv", "no network column"),
        (b"i-1,Ad\x01Net\n", "text/csv", "line 1: network contains a control character"),
        (("i-1," + "n" * 129 + "\n").encode(), "text/csv", "network is longer than 128 characters"),
        (b"i-1,\xff\n", "text/csv", "not UTF-8 (byte 4)"),
        (b"[1]", "application/json", "item 0: expected an object"),
        (b'[{"install_event_id": "i-1", "network": 5}]', "application/json", "item 0: network must be a string"),
        (b'[{"network": "x"}]', "application/json", "item 0: install_event_id is missing"),
        (b'"text"', "application/json", "must be an array of objects"),
        (b"nope", "application/json", "not valid JSON"),
    ],
)
def test_bad_reference_message(body, content_type, message):
    with pytest.raises(InvalidInput) as raised:
        reconcile.parse_reference(body, content_type)
    assert message in raised.value.message


def test_unsupported_media_type():
    with pytest.raises(UnsupportedMediaType) as raised:
        reconcile.parse_reference(b"i-1,a\n", "application/xml")
    assert "text/csv or application/json" in raised.value.message


def test_row_limit(monkeypatch):
    monkeypatch.setattr(reconcile, "MAX_REFERENCE_ROWS", 3)
    with pytest.raises(InvalidInput, match="more than 3 rows"):
        reconcile.parse_reference(b"a,x\nb,x\nc,x\nd,x\n", "text/csv")
    with pytest.raises(InvalidInput, match="more than 3 rows"):
        reconcile.parse_reference(b'[{"install_event_id":"a"},{"install_event_id":"b"},{"install_event_id":"c"},'
                                  b'{"install_event_id":"d"}]', "application/json")


def test_check_apps_rejects_foreign_app():
    rows = [ReferenceRow("i-1", "x", None, "mine", "line 1"), ReferenceRow("i-2", "x", None, "theirs", "line 2")]
    with pytest.raises(InvalidInput, match="line 2: app 'theirs' is not an app of customer 'acme'"):
        reconcile.check_apps(rows, ["mine"], "acme")


def _record(app_id, network, campaign=None, status="attributed"):
    return IngestedAttribution(app_id=app_id, status=status, network=network, campaign=campaign)


def test_compare_reasons_and_accuracy():
    rows = [
        ReferenceRow("match", "AdNet", None, None, "line 1"),
        ReferenceRow("organic", None, None, None, "line 2"),
        ReferenceRow("network", "AdNet", None, None, "line 3"),
        ReferenceRow("campaign", "AdNet", "spring", None, "line 4"),
        ReferenceRow("missing", "AdNet", None, None, "line 5"),
        ReferenceRow("twice", "AdNet", None, None, "line 6"),
        ReferenceRow("pinned", "AdNet", None, "b", "line 7"),
    ]
    index = {
        "match": [_record("a", "adnet", "any")],
        "organic": [_record("a", None, status="organic")],
        "network": [_record("a", None, status="organic")],
        "campaign": [_record("a", "AdNet", "autumn")],
        "twice": [_record("a", "AdNet"), _record("b", "AdNet")],
        "pinned": [_record("a", "Other"), _record("b", "AdNet")],
    }

    outcome = reconcile.compare(rows, index)

    assert outcome.compared == 7
    assert outcome.matched == 3
    assert outcome.accuracy_percent == Decimal("42.8571")
    assert {m["install_event_id"]: m["reason"] for m in outcome.mismatches} == {
        "network": "network_differs", "campaign": "campaign_differs", "missing": "not_found", "twice": "ambiguous",
    }
    network = next(m for m in outcome.mismatches if m["install_event_id"] == "network")
    assert network["actual_status"] == "organic"
    assert network["actual_network"] is None


async def test_index_keeps_requested_installs():
    pages = {"a": [{"install_event_id": "i-1", "network": "X"}, {"install_event_id": "other", "network": "Y"}],
             "b": [{"install_event_id": "i-1", "app_id": "b", "network": "Z", "campaign": "c"}]}

    async def fetch(app_id):
        for record in pages[app_id]:
            yield record

    index = await reconcile.index_records(["a", "b"], {"i-1"}, fetch)

    assert index == {"i-1": [_record("a", "X", status=None), _record("b", "Z", "c", status=None)]}
