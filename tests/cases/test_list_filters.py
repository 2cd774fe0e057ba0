"""A filter value a listing cannot mean (a mistyped status, a type that does not exist) is refused by name
with the values it could be, on the API, the command line and the desk; never read as "nothing matches"."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from conftest import LiveNode
from cyberpact.cli import app
from web.helpers import person, text_of

runner = CliRunner()
HOSTILE = ["bogus", "Received", "received ", "'; DROP TABLE requests; --", "x" * 29, "ацк"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", v) for v in HOSTILE] + [("type", "preservations"), ("type", "PRESERVATION")],
)
def test_api_refuses_an_unknown_request_filter_naming_the_allowed_values(
    node: LiveNode, field: str, value: str
) -> None:
    officer = node.client(node.user("an", "officer"))
    r = officer.get("/api/v1/requests", params={field: value})
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    [problem] = body["errors"]
    assert problem["field"] == field
    allowed = "received" if field == "status" else "preservation"
    assert allowed in problem["message"] and "is not one of" in problem["message"]
    assert "items" not in body


def test_api_keeps_answering_known_filters(node: LiveNode) -> None:
    officer = node.client(node.user("an", "officer"))
    for params in ({"status": "received"}, {"type": "preservation"}, {"direction": "incoming"}, {}):
        r = officer.get("/api/v1/requests", params=params)
        assert r.status_code == 200 and r.json()["items"] == [], params
    r = officer.get("/api/v1/requests", params={"direction": "sideways"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "direction"


def test_api_refuses_an_unknown_outbox_status(node: LiveNode) -> None:
    root = node.client(node.user("root2", "admin"))
    r = root.get("/api/v1/federation/outbox", params={"status": "bogus"})
    assert r.status_code == 422, r.text
    [problem] = r.json()["errors"]
    assert problem["field"] == "status" and all(
        s in problem["message"] for s in ("pending", "delivered", "rejected", "dead")
    )
    assert root.get("/api/v1/federation/outbox", params={"status": "dead"}).json() == []


def test_cli_refuses_unknown_filters_in_one_line(node: LiveNode, cli_env: dict[str, str]) -> None:
    node.user("an", "officer")
    for args in (
        ["outbox", "list", "--status", "bogus"],
        ["requests", "list", "--as", "an", "--status", "bogus"],
        ["requests", "list", "--as", "an", "--direction", "out"],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 1, (args, r.output)
        assert "Traceback" not in r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and "Invalid filter" in lines[0] and "is not one of" in lines[0], r.output
    r = runner.invoke(app, ["outbox", "list", "--status", "dead"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["requests", "list", "--as", "an", "--status", "received"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("path", ["/desk/inbox", "/desk/outbox"])
def test_desk_shows_an_unknown_filter_beside_the_form(node: LiveNode, path: str) -> None:
    kate = person(node, "kate", "central_authority", "officer")
    r = kate.get(f"{path}?status=bogus&type=preservation&country=vn")
    assert r.status_code == 422
    text = text_of(r.text)
    assert "Please correct the following:" in text and "Status: 'bogus' is not one of:" in text
    # The form is there to correct it, keeping what was valid; no count of requests that were not read.
    assert 'name="status"' in r.text and '<option value="preservation" selected>' in r.text
    assert 'name="country" value="VN"' in r.text
    assert "0 requests" not in text and "No request matches these filters." not in text
    r = kate.get(f"{path}?status=received")
    assert r.status_code == 200 and "Please correct the following:" not in text_of(r.text)


def test_a_long_hostile_value_is_named_shortened() -> None:
    from cyberpact.kit.filters import choice_problem

    problem = choice_problem("status", "<script>" * 100, ["pending", "dead"])
    assert problem is not None and problem.field == "status"
    assert len(problem.message) < 100 and problem.message.endswith("is not one of: pending, dead")
