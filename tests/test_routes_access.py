"""Nothing without a login, and error pages that stay inside the site's layout."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import make_app
from tests.helpers import driver
from tracker.web.access import ACCESS, ANONYMOUS

PUBLIC_ENDPOINTS = {endpoint for endpoint, rule in ACCESS.items() if ANONYMOUS in rule.roles}
EXPECTED_PUBLIC = {
    "auth.login",
    "auth.reset_password",  # a one-time link: its token is the credential
    "sso.start",  # single sign-on: to the identity provider and back
    "sso.callback",
    "static",
    "bootstrap.static",
    "healthz",
    "api.openapi",
}
MADE_UP_INT = 987654
MADE_UP_TEXT = "no-such-thing"


API_PUBLIC = {"api.openapi"}  # the API's description; it holds no patient data


def _rules(api: bool = False):
    """(endpoint, rule, method) of every rule that needs a login (or, with ``api``, a
    token), read from a fresh app."""
    out = []
    for rule in make_app("sqlite://").url_map.iter_rules():
        if rule.endpoint in EXPECTED_PUBLIC or rule.endpoint in API_PUBLIC:
            continue
        if rule.endpoint.startswith("api.") != api:
            continue
        for method in ("GET", "POST", "PATCH"):
            if method in rule.methods:
                out.append((rule.endpoint, rule.rule, method))
    return sorted(out)


RULES = _rules()
API_RULES = _rules(api=True)


def made_up_path(rule: str) -> str:
    """The rule with a made-up value for each of its variables (<int:id>, <name>)."""

    def fill(variable: re.Match) -> str:
        return str(MADE_UP_INT) if variable.group(1) in ("int", "anyint") else MADE_UP_TEXT

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", fill, rule)


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_the_public_endpoints_are_the_expected_ones():
    assert PUBLIC_ENDPOINTS == EXPECTED_PUBLIC
    endpoints = {endpoint for endpoint, _, _ in RULES}
    assert {
        "worklist.index",
        "mdt.index",
        "patients.index",
        "patients.register",
        "patients.show",
        "patients.edit",
        "patients.open_pathway",
        "pathway.show",
        "pathway.record",
        "pathway.mdt_outcome",
        "pathway.amend",
        "pathway.void",
        "users.index",
        "users.create",
        "users.edit",
        "auth.logout",
    } <= endpoints


@pytest.mark.parametrize(("endpoint", "rule", "method"), RULES)
def test_anonymous_requests_are_sent_to_log_in(app, client, endpoint, rule, method):
    assert (endpoint, rule) in {(r.endpoint, r.rule) for r in app.url_map.iter_rules()}
    path = made_up_path(rule)
    assert "<" not in path
    response = client.open(path, method=method, data={} if method == "POST" else None)
    assert response.status_code == 302, (method, path, response.status_code)
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == [path]


@pytest.mark.parametrize(("endpoint", "rule", "method"), API_RULES)
def test_anonymous_api_calls_get_401_json(client, endpoint, rule, method):
    """The API never redirects: without a valid bearer token it answers 401, as JSON."""
    path = made_up_path(rule)
    response = client.open(path, method=method, json={} if method != "GET" else None)
    assert response.status_code == 401, (method, path, response.status_code)
    assert response.json["error"] == "unauthorized"
    cookie = {"Cookie": "session=anything"}
    assert client.open(path, method=method, headers=cookie).status_code == 401


def test_every_api_endpoint_is_covered():
    assert {e for e, _, _ in API_RULES} == {
        "api.definition",
        "api.create_patient",
        "api.get_patient",
        "api.update_patient",
        "api.create_pathway",
        "api.list_pathways",
        "api.get_pathway",
        "api.list_events",
        "api.record_event",
        "api.fhir",
        "api.list_tasks",
        "api.create_task",
        "api.change_task",
        "api.list_mdt_meetings",
        "api.create_mdt_meeting",
        "api.get_mdt_meeting",
        "api.list_mdt_case",
        "api.ptl",
        "api.cwt_return",
    }


def test_public_pages_need_no_login(client):
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").status_code == 200
    with client.get("/static/tracker.css") as response:
        assert response.status_code == 200


# -- error pages ------------------------------------------------------------------------------


def assert_site_page(response, status: int, title: str) -> str:
    assert response.status_code == status
    text = shown(response)
    assert "<html" in text and "Pathway tracker" in text  # the layout, with its navigation
    assert f"{status} · {title}" in text
    assert "Traceback" not in text and 'File "' not in text
    assert "Back to the worklist" in text
    return text


def test_403_page(client, login, users, session):
    session.commit()
    login("coordinator")
    text = assert_site_page(client.get("/users/"), 403, "Forbidden")
    assert "A care coordinator may not use this page." in text
    assert "Coordinator · Care coordinator" in text  # who is logged in, as on every page


def test_404_pages(client, login, users, session):
    session.commit()
    login("coordinator")
    for path in (f"/pathways/{MADE_UP_INT}", f"/patients/{MADE_UP_INT}", "/no/such/page"):
        text = assert_site_page(client.get(path), 404, "Not Found")
        assert "There is nothing at this address." in text


def test_409_page_says_why(client, login, users, session):
    pathway = driver(users).pathway
    session.commit()
    login("coordinator")
    response = client.get(f"/pathways/{pathway.id}/record/record_surgery")
    text = assert_site_page(response, 409, "Conflict")
    assert "'Record operation' cannot be recorded now: the pathway is in 'Referred'." in text


def test_405_page(client, login, users, session):
    session.commit()
    login("coordinator")
    assert_site_page(client.get("/logout"), 405, "Method Not Allowed")


@pytest.mark.parametrize("path", ["/pathways/{}", "/patients/{}", "/users/{}"])
def test_an_id_out_of_range_is_404(client, login, users, session, path):
    session.commit()
    login("admin")
    assert_site_page(client.get(path.format(10**20)), 404, "Not Found")


def test_unknown_page_for_anonymous_is_404_not_a_login(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Pathway tracker" in shown(response) and "Traceback" not in shown(response)
