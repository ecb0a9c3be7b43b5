"""Two app servers on different ports sharing one PostgreSQL database."""

from __future__ import annotations

import http.cookiejar
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select
from sqlalchemy.pool import NullPool
from werkzeug.serving import make_server

from tests.conftest import PASSWORD, make_app, postgres_scratch
from tests.helpers import driver, make_users, whole_responses
from tracker.api.services import create_token
from tracker.engine.models import Event
from tracker.extensions import db


def serve(app):
    server = make_server("127.0.0.1", 0, whole_responses(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def two_servers():
    """Several app servers share PostgreSQL (SQLite serves one), so this runs on it only."""
    with postgres_scratch("_two") as url:
        yield from _serve_two(url)


def _serve_two(scratch_url):
    apps = [
        make_app(
            scratch_url,
            SQLITE_EXPLICIT_TRANSACTIONS=False,
            SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool},
        )
        for _ in range(2)
    ]
    with apps[0].app_context():
        upgrade()
        users = make_users()
        run = driver(users, referral=datetime.now(UTC) - timedelta(days=3))
        run.walk_to("imaging")
        run.do("record_imaging")
        _, token = create_token(users["coordinator"], "two servers")
        db.session.commit()
        setup = {"pathway": run.pathway.id, "version": run.pathway.version, "token": token}
        db.session.remove()
    served = [serve(app) for app in apps]
    yield [url for _, _, url in served], setup, apps[0]
    for server, thread, _ in served:
        server.shutdown()
        thread.join(timeout=10)
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def test_a_session_started_on_one_server_is_valid_on_the_other(two_servers):
    (first, second), _, _ = two_servers
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    body = urllib.parse.urlencode({"username": "coordinator", "password": PASSWORD}).encode()
    with opener.open(f"{first}/login", data=body) as response:
        assert response.geturl().endswith("/")  # followed the redirect to the worklist
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    request = urllib.request.Request(f"{second}/", headers={"Cookie": cookie})
    no_redirect = urllib.request.build_opener(NoRedirect)
    with no_redirect.open(request) as response:
        assert response.status == 200 and b"Worklist" in response.read()
    anonymous = urllib.request.Request(f"{second}/")
    with pytest.raises(urllib.error.HTTPError) as refused:
        no_redirect.open(anonymous)
    refused.value.close()
    assert refused.value.code == 302


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_conflicting_transitions_on_both_servers_one_wins(two_servers):
    urls, setup, app = two_servers
    barrier = threading.Barrier(2)
    outcomes: list[int] = []
    triggers = [("refer_to_mdt", {}), ("withdraw", {"reason": "transferred"})]

    def post(url, trigger, data):
        body = json.dumps(
            {
                "trigger": trigger,
                "expected_version": setup["version"],
                "occurred_at": datetime.now(UTC).isoformat(),
                "request_id": uuid.uuid4().hex,
                "data": data,
            }
        ).encode()
        request = urllib.request.Request(
            f"{url}/api/v1/pathways/{setup['pathway']}/events",
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {setup['token']}",
                "Content-Type": "application/json",
            },
        )
        barrier.wait(timeout=10)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                outcomes.append(response.status)
        except urllib.error.HTTPError as error:
            outcomes.append(error.code)
            error.close()

    threads = [
        threading.Thread(target=post, args=(url, *trigger))
        for url, trigger in zip(urls, triggers, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == [201, 409]
    with app.app_context():
        events = db.session.scalar(
            select(func.count(Event.id)).where(Event.pathway_id == setup["pathway"])
        )
        assert events == setup["version"] + 1
        db.session.remove()
