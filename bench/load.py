"""A load driver: N client processes, each logged in, each on one keep-alive connection.

Separate processes (not threads), so the client is not held back by one GIL.
Only addresses on this machine are used; every run is bounded in time.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import re
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from tracker.demo import DEMO_PASSWORD


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    path: str
    expect: int = 200
    api: bool = False  # bearer token instead of a web session
    # POST add_note to the client's own pathway: through the API's events when ``path`` is
    # empty, else to ``path`` (the floor's write, bench/floor.py), which takes only a note.
    note: bool = False
    floor: str = ""  # the name of the floor scenario this one is compared with


class Client:
    def __init__(self, host: str, port: int, token: str | None = None):
        self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self.cookie = ""
        self.token = token

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                self.cookie = value.split(";", 1)[0]
        return response.status, data

    def login(self, username: str):
        _, page = self.request("GET", "/login")
        token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        body = urlencode(
            {"csrf_token": token.decode(), "username": username, "password": DEMO_PASSWORD}
        )
        status, _ = self.request(
            "POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        if status != 302:
            raise RuntimeError(f"login failed: {status}")

    def api(self, method, path, payload=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        body = None
        if payload is not None:
            body = json.dumps(payload)
            headers["Content-Type"] = "application/json"
        status, data = self.request(method, path, body, headers)
        return status, (json.loads(data) if data else None)


def _worker(args):
    host, port, scenario, duration, token, pathway_id, start_at, record = args
    client = Client(host, port, token)
    if not scenario.api:
        client.login("coordinator")
    version = None
    if scenario.note and not scenario.path:
        _, body = client.api("GET", f"/api/v1/pathways/{pathway_id}")
        version = body["version"]
    while time.time() < start_at:
        time.sleep(0.005)
    latencies, errors, stored = [], 0, []
    end = start_at + duration
    while time.time() < end:
        t0 = time.perf_counter()
        try:
            if scenario.note and scenario.path:
                status, _ = client.api(
                    "POST", scenario.path.format(id=pathway_id), {"note": "Benchmark note."}
                )
            elif scenario.note:
                request_id = uuid.uuid4().hex
                status, body = client.api(
                    "POST",
                    f"/api/v1/pathways/{pathway_id}/events",
                    {
                        "trigger": "add_note",
                        "occurred_at": _now_iso(),
                        "expected_version": version,
                        "request_id": request_id,
                        "data": {"note": "Benchmark note."},
                    },
                )
                if status == 201:
                    version = body["version"]
                    if record:
                        stored.append(request_id)
            elif scenario.api:
                status, _ = client.api(scenario.method, scenario.path.format(id=pathway_id))
            else:
                status, _ = client.request(scenario.method, scenario.path)
        except (OSError, http.client.HTTPException):
            status = 0
            client = Client(host, port, token)
            if not scenario.api:
                client.login("coordinator")
        latencies.append(time.perf_counter() - t0)
        if status != scenario.expect:
            errors += 1
    return latencies, errors, stored


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def run(
    host,
    port,
    scenario: Scenario,
    duration: float,
    clients: int,
    token: str,
    pathway_ids: list[int],
    record: bool = False,
) -> dict:
    """``port`` may be a list: the clients are then split across those servers."""
    ports = port if isinstance(port, list) else [port]
    start_at = time.time() + 2.0  # every client logged in before the clock starts
    jobs = [
        (
            host,
            ports[i % len(ports)],
            scenario,
            duration,
            token,
            pathway_ids[i % len(pathway_ids)],
            start_at,
            record,
        )
        for i in range(clients)
    ]
    with mp.get_context("fork").Pool(clients) as pool:
        results = pool.map(_worker, jobs)
    latencies = [x for lat, _, _ in results for x in lat]
    errors = sum(e for _, e, _ in results)
    stored = [r for _, _, s in results for r in s]
    count = len(latencies)
    return {
        "scenario": scenario.name,
        "requests": count,
        "errors": errors,
        "rps": round(count / duration, 1),
        "p50_ms": round(1000 * percentile(latencies, 0.50), 2) if count else None,
        "p95_ms": round(1000 * percentile(latencies, 0.95), 2) if count else None,
        "p99_ms": round(1000 * percentile(latencies, 0.99), 2) if count else None,
        "stored": stored,
    }
