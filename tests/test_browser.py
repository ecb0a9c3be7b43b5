"""A coordinator in a real browser: register, open, record every step, amend, void; axe checks.

Drives Debian's Chromium through Playwright (never a downloaded browser) against the
app served on a scratch database of each backend. Saves the guide's screenshots (docs/screenshots).
"""

from __future__ import annotations

import os
import re
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask_migrate import upgrade
from werkzeug.serving import make_server

from tests.conftest import PASSWORD, make_app
from tests.helpers import make_users, totp_code, whole_responses
from tracker.extensions import db
from tracker.users.models import User

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="needs Debian's chromium (apt-get install chromium; .ci/run does)",
    ),
]


@pytest.fixture
def live_app(scratch_url):
    from sqlalchemy.pool import NullPool

    app = make_app(
        scratch_url,
        SQLITE_EXPLICIT_TRANSACTIONS=False,
        SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool},
        WTF_CSRF_ENABLED=True,
    )
    with app.app_context():
        upgrade()
        make_users()
        db.session.commit()
        db.session.remove()
    return app


@pytest.fixture
def live_server(live_app):
    app = live_app
    server = make_server("127.0.0.1", 0, whole_responses(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def page(live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(base_url=live_server, viewport={"width": 1360, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15000)
        # The Content-Security-Policy forbids inline script and foreign sources: anything
        # of the app's own that it blocked would show here (and silently break the page).
        blocked: list[str] = []
        page.on(
            "console",
            lambda message: (
                blocked.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        yield page
        context.close()
        browser.close()
        assert not blocked, blocked


def serious_violations(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _unfolded_menu(page):
    """The main menu of the loaded page, unfolded on a narrow screen. The page is let
    finish loading first: a page whose stylesheet is still on its way shows the menu's
    toggle that the stylesheet hides on a wide screen. Whether the toggle is there at all
    is the screen's width (the stylesheet's breakpoint), never what a half-loaded page shows."""
    page.wait_for_load_state("load")
    menu = page.locator("nav[aria-label=Main]")
    narrow = (page.viewport_size or {"width": 1360})["width"] < 992
    if narrow and not menu.locator("#nav-toggle").is_checked():
        menu.locator(".nav-toggle-label").click()
    return menu


def nav(page, group: str | None, link: str) -> None:
    """Follow a link of the main menu: unfold the menu (narrow screens) and its group first."""
    menu = _unfolded_menu(page)
    if group:
        details = menu.locator(".nav-list:not(.nav-end) > .nav-group > details").filter(
            has=page.locator("summary", has_text=re.compile(rf"^\s*{group}\s*$"))
        )
        if details.get_attribute("open") is None:
            details.locator("summary").click()
    menu.get_by_role("link", name=link, exact=True).click()


def log_out(page) -> None:
    """Log out through the account menu (the last group of the main menu)."""
    menu = _unfolded_menu(page)
    account = menu.locator(".nav-group-end details")
    if account.get_attribute("open") is None:
        account.locator("summary").click()
    menu.get_by_role("button", name="Log out").click()


def when_it_happened(page, at: datetime) -> None:
    """Fill a record form's "When it happened": its date and its time, in local time."""
    local = at.astimezone(ZoneInfo("Europe/London"))
    group = page.get_by_role("group", name="When it happened")
    group.get_by_label("Date").fill(local.date().isoformat())
    group.get_by_label("Time").fill(local.strftime("%H:%M"))


def record(page, action: str, fill=None) -> None:
    """Click an action on the pathway page, fill its form, submit, land back on the page.
    The form presets the date and leaves the time blank: left so by ``fill``, the step
    happened now."""
    page.get_by_role("link", name=action, exact=True).click()
    if fill:
        fill(page)
    if page.locator("#occurred_at-time").input_value() == "":
        when_it_happened(page, datetime.now(UTC))
    page.locator("form [type=submit]").last.click()
    page.wait_for_url(re.compile(r"/pathways/\d+(#event-\d+)?$"))
    assert page.locator(".alert-success").count() == 1, page.content()[:2000]


def test_coordinator_records_a_whole_pathway(page, backend):
    page.goto("/login")
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "login.png")
    page.get_by_label("Username").fill("coordinator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="My work").wait_for()  # a coordinator's landing page

    # Register a patient and open a pathway from the referral.
    nav(page, "Patients", "Register patient")
    page.screenshot(path="/tmp/dbg-register.png")
    page.get_by_label("MRN (hospital number)").fill("H123456")
    page.get_by_label("Family name").fill("Okafor")
    page.get_by_label("Given name").fill("Grace")
    page.get_by_label("Date of birth").fill("1958-07-14")
    page.get_by_label("Sex").select_option("female")
    page.get_by_role("button", name="Register patient").click()
    page.get_by_role("heading", name="OKAFOR, Grace").wait_for()
    page.get_by_role("link", name="Open a pathway from a referral").click()
    page.get_by_label("Referral source").select_option("gp")
    page.get_by_label("Urgency").select_option("urgent")
    page.get_by_label("Diagnosis category").select_option("metastatic_spinal")
    page.get_by_label("Tumour site").fill("T7-T9")
    page.get_by_label("Primary cancer site").select_option("breast")
    page.get_by_label("Back pain").check()
    page.get_by_label("Weakness").check()
    page.get_by_label("Lead surgeon").select_option("surgeon")
    page.get_by_role("button", name="Open pathway").click()
    page.wait_for_url(re.compile(r"/pathways/\d+$"))

    record(page, "Request imaging")
    record(
        page,
        "Imaging reported",
        lambda p: (
            p.get_by_label("Modality").select_option("mri"),
            p.get_by_label("Region").fill("Thoracic spine"),
            p.get_by_label("Levels").fill("T7-T9"),
            p.get_by_label("Findings").fill("Lytic T8 lesion with epidural extension."),
            p.get_by_label("Bilsky ESCC grade").select_option("1c"),
            backend == "sqlite" and p.screenshot(path=SHOTS / "record-step.png", full_page=True),
        ),
    )
    record(page, "Request biopsy")
    record(
        page,
        "Biopsy result",
        lambda p: (
            p.get_by_label("Method").select_option("ct_guided_core"),
            p.get_by_label("Histology").fill("Metastatic breast adenocarcinoma, ER positive."),
            p.get_by_label("Result").select_option("malignant"),
        ),
    )
    record(page, "Refer to MDT")

    # The MDT outcome: the totals follow the components as they are chosen.
    page.get_by_role("link", name="Record MDT outcome").click()
    when_it_happened(page, datetime.now(UTC))
    page.get_by_label("Decision").select_option("plan_surgery")
    page.get_by_label("MDT meeting date").fill(date.today().isoformat())
    page.get_by_label("Spinal surgery").check()
    page.get_by_label("Radiology").check()
    page.get_by_label("Clinical oncology").check()
    page.get_by_label("Rationale").fill("Unstable T8 lesion: stabilise and decompress.")
    # Filled in from the record: the MRI's Bilsky grade, the primary site of a breast primary.
    assert page.locator("#bilsky_grade").input_value() == "1c"
    assert page.locator("#tokuhashi__primary_site").input_value() == "5"
    for component, points in [
        ("general_condition", "2"),
        ("extraspinal_bone_metastases", "1"),
        ("vertebral_metastases", "2"),
        ("visceral_metastases", "2"),
        ("palsy", "2"),
    ]:
        page.locator(f"#tokuhashi__{component}").select_option(points)
    for component, points in [
        ("location", "1"),
        ("pain", "3"),
        ("bone_lesion", "2"),
        ("alignment", "2"),
        ("collapse", "2"),
        ("posterolateral", "1"),
    ]:
        page.locator(f"#sins__{component}").select_option(points)
    summary = page.locator("#sins-summary")
    assert "Total 11" in summary.inner_text()
    assert "spinal surgical opinion is needed" in summary.inner_text()
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "mdt-outcome.png", full_page=True)
    page.get_by_role("button", name="Record MDT outcome").click()
    page.wait_for_url(re.compile(r"/pathways/\d+(#event-\d+)?$"))

    record(
        page,
        "Pre-operative assessment",
        lambda p: (
            p.get_by_label("ASA grade").fill("2"),
            p.get_by_label("Yes").check(),
        ),
    )
    record(
        page,
        "Record operation",
        lambda p: (
            p.get_by_label("Lead surgeon").select_option("surgeon"),
            p.get_by_label("Decompression").check(),
            p.get_by_label("Stabilisation and fusion").check(),
            p.get_by_label("Approach").select_option("open"),
            p.get_by_label("Levels", exact=True).fill("T6-T10"),
            p.get_by_label("SSEP").check(),
        ),
    )
    record(page, "Start rehabilitation")
    record(
        page, "Therapy session", lambda p: p.get_by_label("Mobility").select_option("walking_aid")
    )
    record(
        page,
        "Start surveillance",
        lambda p: p.get_by_label("First follow-up visit due").fill(
            (date.today() + timedelta(days=90)).isoformat()
        ),
    )

    # Amend the imaging report, then void the last step.
    page.get_by_role("link", name=re.compile(r"^Amend Imaging reported")).click()
    page.get_by_label("Levels").fill("T7-T10")
    page.get_by_label("Reason for the correction").fill("T10 involvement missed at entry.")
    page.get_by_role("button", name="Record amendment").click()
    page.wait_for_url(re.compile(r"/pathways/\d+(#event-\d+)?$"))
    page.get_by_role("link", name=re.compile(r"^Void")).click()
    page.get_by_label("Reason for voiding").fill("Surveillance recorded before the therapy ended.")
    page.get_by_role("button", name="Void this step").click()
    page.wait_for_url(re.compile(r"/pathways/\d+(#event-\d+)?$"))

    timeline = page.locator("ol.timeline")
    for label in [
        "Referral received",
        "Request imaging",
        "Imaging reported",
        "Request biopsy",
        "Biopsy result",
        "Refer to MDT",
        "MDT decision: surgery",
        "Pre-operative assessment",
        "Record operation",
        "Start rehabilitation",
        "Therapy session",
        "Start surveillance",
        "Amendment",
        "Step voided",
    ]:
        assert timeline.get_by_text(label, exact=True).count() >= 1, label
    assert (
        "Rehabilitation" in page.locator("h1 + span + span + span, .state-badge").first.inner_text()
    )
    voided = page.locator("li.voided")
    assert voided.count() == 1 and "Start surveillance" in voided.inner_text()
    assert "Surveillance recorded before the therapy ended." in voided.inner_text()
    amended = page.locator(".timeline > li", has=page.locator("summary"))
    assert "T7-T10" in amended.inner_text()
    amended.locator("summary").click()
    assert "T7-T9" in amended.locator("details").inner_text()  # the original, on demand
    assert "11 - Potentially unstable" in timeline.inner_text()
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "pathway.png", full_page=True)

    # The worklist and the MDT list, as the coordinator sees them.
    page.get_by_role("link", name="Worklist", exact=True).click()
    assert "OKAFOR, Grace" in page.locator("table").inner_text()
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "worklist.png")
    nav(page, "MDT", "MDT list")
    page.get_by_role("heading", name=re.compile("MDT list")).wait_for()
    assert not serious_violations(page)


def test_surgeon_overview_of_a_demo_pathway(live_app, page, backend):
    """A demo pathway with a recurrence and a complication: every chart draws, with a size."""
    from sqlalchemy import select

    from tracker.demo import seed
    from tracker.engine.models import Event, Pathway

    with live_app.app_context():
        seed(300, seed_value=11)
        db.session.commit()
        pathway_id = db.session.scalar(
            select(Pathway.id)
            .where(
                Pathway.recurrence_count > 0,
                select(Event.id)
                .where(Event.pathway_id == Pathway.id, Event.trigger == "record_complication")
                .exists(),
            )
            .limit(1)
        )
        db.session.remove()
    assert pathway_id is not None, "the demo data has a recurrence with a complication"
    page.goto("/login")
    page.get_by_label("Username").fill("surgeon")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"/pathways/{pathway_id}")
    overview = page.locator("section.overview")
    charts = overview.locator("svg.chart")
    assert charts.count() == 4  # the lesion map, the phases, the trends, the diagram
    for i in range(4):
        box = charts.nth(i).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100, box
    assert overview.locator("svg.diagram rect.svg-node-current").count() == 1
    assert overview.locator("svg.diagram path.svg-edge-taken").count() >= 5
    assert "Clavien-Dindo" in overview.inner_text()
    imaging_bars = overview.locator("svg.chart rect title", has_text="Imaging:")
    assert imaging_bars.count() >= 2  # the recurrence: a second pass through imaging
    assert not serious_violations(page)
    if backend == "sqlite":
        overview.screenshot(path=SHOTS / "overview.png")
    page.goto(f"/pathways/{pathway_id}/print")
    assert page.locator("svg.chart").count() == 4


def _log_in(page, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def _local(at: datetime) -> str:
    """A time as a datetime-local input takes it, in the hospital's zone."""
    return at.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%dT%H:%M")


def test_recording_after_the_fact_and_correcting_it(live_app, page, backend):
    """The recording issue's breakages, tried as a coordinator and a surgeon would: a late
    entry after a sign-off, a wrong imaging time, a wrong referral urgency, a handover."""
    from tests.helpers import Driver, new_pathway
    from tracker.users.models import User

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    referral = now - timedelta(days=3)
    with live_app.app_context():
        from sqlalchemy import select

        people = {u.username: u for u in db.session.scalars(select(User))}
        pathway = new_pathway(people["coordinator"], referral, urgency="emergency")
        run = Driver(pathway, people["coordinator"], referral)
        run.do("request_imaging", occurred_at=referral + timedelta(hours=1))
        run.do("record_imaging", occurred_at=referral + timedelta(hours=30))  # typed late
        run.do("refer_to_mdt", occurred_at=referral + timedelta(hours=31))
        run.do("sign_off", {}, actor=people["surgeon"], occurred_at=now - timedelta(hours=1))
        pathway_id = pathway.id
        db.session.commit()
        db.session.remove()

    _log_in(page, "coordinator")
    page.goto(f"/pathways/{pathway_id}")
    targets = page.locator("section[aria-labelledby=targets-heading]")
    assert "Missed" in targets.locator("tr[data-clock=mscc_mri]").inner_text()

    # A late entry, dated yesterday: before the sign-off, recorded after it.
    record(
        page,
        "Clinical assessment",
        lambda p: (
            when_it_happened(p, now - timedelta(days=1)),
            p.get_by_label("Pain (NRS 0-10)").fill("6"),
        ),
    )
    entry = page.locator("ol.timeline li", has_text="Clinical assessment")
    assert "Not yet reviewed" in entry.inner_text()

    # The imaging was reported 20 hours after the referral, not 30: the MRI clock is met.
    page.get_by_role("link", name=re.compile(r"^Amend Imaging reported")).click()
    page.get_by_label("When it happened").fill(_local(referral + timedelta(hours=20)))
    page.get_by_label("Reason for the correction").fill("Report time typed as the entry time.")
    assert not serious_violations(page)
    page.get_by_role("button", name="Record amendment").click()
    page.wait_for_url(re.compile(r"/pathways/\d+(#event-\d+)?$"))
    assert "Met" in targets.locator("tr[data-clock=mscc_mri]").inner_text()

    # The referral letter said pain only: urgent, not emergency. The 24-hour clocks go.
    page.get_by_role("link", name=re.compile(r"^Amend Referral received")).click()
    page.get_by_label("Urgency", exact=True).select_option("urgent")
    page.get_by_label("Referral priority").select_option("urgent_suspected_cancer")
    page.get_by_label("Reason for the correction").fill("Referral letter re-read: pain only.")
    assert not serious_violations(page)
    page.get_by_role("button", name="Record amendment").click()
    page.wait_for_url(re.compile(r"/pathways/\d+(#event-\d+)?$"))
    assert targets.locator("tr[data-clock=mscc_mri]").count() == 0
    assert targets.locator("tr[data-clock=spinal_mets_mri]").count() == 1

    # A handover to another coordinator, on the timeline.
    record(
        page,
        "Handover",
        lambda p: p.get_by_label("New coordinator").select_option("coordinator2"),
    )
    assert page.locator("ol.timeline").get_by_text("Handover", exact=True).count() == 1
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "corrections.png", full_page=True)

    # The patient's details: a wrong given name and the NHS number, corrected on the patient.
    page.locator("h1 a").first.click()
    page.get_by_role("link", name="Edit details").click()
    page.get_by_label("Given name").fill("Janet")
    page.get_by_label("NHS number").fill("943 476 5919")
    assert not serious_violations(page)
    page.get_by_role("button", name="Save changes").click()
    page.get_by_role("heading", name=re.compile("DOE, Janet")).wait_for()
    assert "943 476 5919" in page.locator("main").inner_text()
    # A second pathway for the patient: the form names the open one and asks to confirm.
    page.get_by_role("link", name="Open a pathway from a referral").click()
    warning = page.locator(".alert-warning")
    assert f"#{pathway_id}" in warning.inner_text()
    assert page.get_by_label("Yes, open a second pathway for this patient").count() == 1
    assert not serious_violations(page)

    # The surgeon lands on My work; their queue, where the pathway waits for review, is
    # one click away.
    log_out(page)
    _log_in(page, "surgeon")
    page.get_by_role("heading", name="My work").wait_for()
    nav(page, None, "Sign-off")
    page.get_by_role("heading", name="Awaiting my sign-off").wait_for()
    assert not serious_violations(page)
    page.locator(f"a[href='/pathways/{pathway_id}']").click()
    record(page, "Surgeon sign-off")
    assert page.locator(".unreviewed-badge").count() == 0
    nav(page, None, "Sign-off")
    page.get_by_role("heading", name="Awaiting my sign-off").wait_for()
    assert page.locator(f"a[href='/pathways/{pathway_id}']").count() == 0


def test_administrator_reads_the_audit_log(page, backend):
    """A wrong password, then the surgeon's view of a patient page: both on the audit
    page, found with the filters; the page passes axe."""
    page.goto("/login")
    page.get_by_label("Username").fill("surgeon")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    assert "Unknown username or wrong password" in page.locator("main").inner_text()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/mdt/")
    log_out(page)

    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # Administrators log in with a second factor: the code their authenticator shows.
    page.get_by_label("Code").fill(totp_code())
    page.get_by_role("button", name="Continue").click()
    # Signed in: the menu is read from the page that follows, not from the code's page.
    page.wait_for_url(lambda url: "/login/" not in url)
    nav(page, "Admin", "Audit log")
    table = page.locator("table tbody")
    assert "Login failed" in table.inner_text() and "Viewed" in table.inner_text()
    page.get_by_label("User").select_option("surgeon")
    page.get_by_label("Action").select_option("login_failed")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table tbody tr")
    assert rows.count() == 1 and "wrong password" in rows.first.inner_text()
    page.get_by_label("Action").select_option("")
    page.get_by_role("button", name="Filter").click()
    # the failure, the login, the worklist it lands on, the MDT list, the logout
    assert page.locator("table tbody tr").count() == 5
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "audit.png", full_page=True)


def test_waiting_times_as_a_coordinator_keeps_them(live_app, page, backend):
    """The national rules in the browser: a missed first appointment restarts the 28-day
    clock, telling the patient stops it, the count is in words, the PTL and the return
    show the pathway, and a benign result leaves the pathway."""
    from tests.helpers import new_pathway
    from tracker.users.models import User

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    referral = now - timedelta(days=20)
    with live_app.app_context():
        from sqlalchemy import select

        coordinator = db.session.scalar(select(User).where(User.username == "coordinator"))
        pathway_id = new_pathway(coordinator, referral, urgency="urgent").id
        db.session.commit()
        db.session.remove()
    _log_in(page, "coordinator")
    page.goto(f"/pathways/{pathway_id}")
    targets = page.locator("section[aria-labelledby=targets-heading]")
    assert "day 20 of 28" in targets.locator("tr[data-clock=fds_28]").inner_text()

    rebooked = (now - timedelta(days=12)).astimezone(ZoneInfo("Europe/London")).date()
    record(
        page,
        "Waiting-time adjustment",
        lambda p: (
            when_it_happened(p, now - timedelta(days=15)),
            p.get_by_label("Adjustment").select_option("dna_first_appointment"),
            p.get_by_label("Reason", exact=True).fill("Did not attend the first clinic."),
            p.get_by_label("Rebooked appointment").fill(rebooked.isoformat()),
        ),
    )
    fds = targets.locator("tr[data-clock=fds_28]").inner_text()
    assert "day 12 of 28" in fds and "restarted on the rebooked first appointment" in fds

    record(
        page,
        "Diagnosis communicated",
        lambda p: (
            p.get_by_label("What the patient was told").select_option("cancer_ruled_out"),
            p.get_by_label("How").select_option("telephone"),
        ),
    )
    assert "Met" in targets.locator("tr[data-clock=fds_28]").inner_text()
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "waiting-times.png", full_page=True)

    # The 62-day clock still runs: the pathway is on the PTL, in the first band.
    nav(page, "Reports", "PTL")
    row = page.locator("tr", has=page.locator(f"a[href='/pathways/{pathway_id}']"))
    assert "0-28" in row.inner_text()
    assert not serious_violations(page)
    month = now.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m")
    page.goto(f"/returns/cwt?month={month}")
    assert str(pathway_id) in page.locator("main").inner_text()
    assert not serious_violations(page)

    # Cancer ruled out: the pathway ends, discharged.
    page.goto(f"/pathways/{pathway_id}")
    record(
        page,
        "Cancer ruled out",
        lambda p: p.get_by_label("Why cancer is ruled out").select_option("benign"),
    )
    assert "Discharged" in page.locator("main").inner_text()


def test_another_teams_patient_opens_only_with_emergency_access(live_app, page, backend):
    """A spine coordinator does not find a metastatic-team patient; their page offers
    emergency access, which asks for a reason and opens it under a banner."""
    from sqlalchemy import select

    from tests.helpers import new_pathway
    from tracker.teams.services import set_teams
    from tracker.users.models import User

    with live_app.app_context():
        coordinator = db.session.scalar(select(User).where(User.username == "coordinator"))
        pathway = new_pathway(coordinator, diagnosis_category="metastatic_spinal")
        set_teams(coordinator, ["spine"])
        db.session.commit()
        pathway_id, mrn = pathway.id, pathway.patient.mrn
        db.session.remove()

    page.goto("/login")
    page.get_by_label("Username").fill("coordinator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"/patients/?q={mrn}")
    assert "No patient found" in page.locator("main").inner_text()
    page.goto(f"/pathways/{pathway_id}")
    main = page.locator("main")
    assert "Another team's patient" in main.inner_text() and mrn not in main.inner_text()
    assert "Metastatic spine" in main.inner_text()
    page.get_by_label("Clinical reason").fill("short")
    page.get_by_role("button", name="Open with emergency access").click()
    assert "at least 10 characters" in page.locator("main").inner_text()
    assert not serious_violations(page)
    page.get_by_label("Clinical reason").fill("Admitted overnight with cord compression, on call")
    page.get_by_role("button", name="Open with emergency access").click()
    page.wait_for_url(re.compile(rf"/pathways/{pathway_id}$"))
    text = page.locator("main").inner_text()
    assert "Emergency access" in text and "every view is audited" in text
    assert mrn in text
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "emergency-access.png", full_page=True)


def test_administrator_sets_up_two_factor_login_at_first_login(live_app, page, backend):
    """An administrator without a second factor: the QR code (a data: image the CSP allows,
    no script), the key as text, a code to confirm, ten recovery codes, then the app."""
    import pyotp
    from sqlalchemy import select

    with live_app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "admin"))
        admin.totp_secret = admin.totp_enabled_at = None
        db.session.commit()
        db.session.remove()
    _log_in(page, "admin")
    page.get_by_role("heading", name="Set up two-factor login").wait_for()
    page.goto("/users/")  # nothing else until it is set up
    page.get_by_role("heading", name="Set up two-factor login").wait_for()
    assert page.locator("#totp-qr").evaluate("img => img.complete && img.naturalWidth > 100")
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "two-factor.png")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("heading", name="Your recovery codes").wait_for()
    assert page.locator("#recovery-codes li").count() == 10
    page.get_by_role("link", name="I have kept them: continue").click()
    page.get_by_role("heading", name="Worklist").wait_for()
    page.goto("/account/")
    assert "10 of 10 recovery codes left" in page.locator("main").inner_text()


def test_the_mdt_forms_grade_choices_are_read_whole(live_app, page, backend):
    """ASIA, Bilsky and Enneking choices carry their descriptions: each select is wide
    enough for its longest choice at a laptop's and a tablet's width (ASIA's was cut off)."""
    from sqlalchemy import select

    from tests.helpers import driver

    with live_app.app_context():
        users = {u.username: u for u in db.session.scalars(select(User))}
        run = driver(users)
        run.walk_to("mdt_review")
        db.session.commit()
        pathway_id = run.pathway.id
        db.session.remove()
    _log_in(page, "surgeon")
    fits = """(select) => {
        const style = getComputedStyle(select);
        const context = document.createElement("canvas").getContext("2d");
        context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
        const widest = Math.max(...[...select.options].map(o => context.measureText(o.text).width));
        const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
        const room = select.clientWidth - padding;
        return [widest, room];
    }"""
    for width in (1366, 1024):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/pathways/{pathway_id}/mdt-outcome")
        for name in ("asia_grade", "bilsky_grade", "enneking_stage"):
            widest, room = page.locator(f"#{name}").evaluate(fits)
            assert widest <= room, (width, name, widest, room)
        assert "D - motor incomplete, most 3 or more" in page.locator("#asia_grade").inner_text()


def test_a_whole_mdt_meeting_prepared_printed_attended_run_live_and_written_up(
    live_app, page, backend, tmp_path
):
    """An MDT coordinator's meeting: a pathway listed from its page, the agenda of a
    meeting of three cases printed (one A4 page per case), the attendance taken, the three
    outcomes recorded in live mode without going back to a list (keys for next and
    previous), and the GP letter generated and downloaded as a PDF that reads as a letter.
    Any time of day: the meeting is held at the minute the test starts."""
    import io
    import uuid
    from unicodedata import normalize

    from pypdf import PdfReader
    from sqlalchemy import select

    from tests.helpers import driver
    from tracker.engine import services
    from tracker.engine.models import Pathway
    from tracker.mdt import services as mdt

    # The meeting is held today, at the minute that has just begun: its outcomes are
    # recorded as it runs, whatever the time of day (an outcome cannot be dated after it is
    # recorded, nor a meeting's date after its outcome). Its cases were listed a minute
    # before it started; a fourth pathway is listed from its page on the team's meeting
    # tomorrow, always ahead.
    zone = ZoneInfo("Europe/London")
    local_now = datetime.now(zone)
    start = local_now.replace(second=0, microsecond=0)
    listed_at = (start - timedelta(minutes=1)).astimezone(UTC)
    questions = (
        "Stabilise T8 before radiotherapy?",
        "SBRT or conventional radiotherapy to L2?",
        "Confirm surveillance after stable imaging",
    )
    live_app.config["MDT_LIST_CLOSES_HOURS"] = 0  # the list closes as the meeting starts
    with live_app.app_context():
        users = {u.username: u for u in db.session.scalars(select(User))}
        drives = []
        for _ in range(4):
            run = driver(users, referral=datetime.now(UTC) - timedelta(days=12))
            run.walk_to("mdt_review")
            drives.append(run)
        meeting, tomorrow = (
            mdt.create_meeting(
                {
                    "team": "metastatic",
                    "meeting_date": day.isoformat(),
                    "start_time": at,
                    "location": "Seminar room 2, spinal unit",
                    "chair": "surgeon",
                },
                users["coordinator"],
            )
            for day, at in (
                (start.date(), f"{start:%H:%M}"),
                (start.date() + timedelta(days=1), "08:00"),
            )
        )
        for run, question in zip(drives, questions, strict=False):
            services.record(
                run.pathway,
                "schedule_mdt",
                {
                    "meeting_id": meeting.id,
                    "question": question,
                    "presenter": "surgeon",
                    "triage": "full_discussion",
                },
                listed_at,
                users["coordinator"],
                run.pathway.version,
                uuid.uuid4().hex,
                now=listed_at,
            )
        meeting_id, tomorrow_id = meeting.id, tomorrow.id
        pathway_ids = [run.pathway.id for run in drives[:3]]
        fourth_id = drives[3].pathway.id
        mrns = [db.session.get(Pathway, pid).patient.mrn for pid in pathway_ids]
        db.session.commit()
        db.session.remove()
    _log_in(page, "coordinator")

    # Prepare: a pathway listed from its page with its question, presenter and triage.
    page.goto(f"/pathways/{fourth_id}")
    page.get_by_role("link", name="List on an MDT meeting").click()
    page.get_by_label("Meeting").select_option(str(tomorrow_id))
    page.get_by_label("Clinical question").fill("Restage after radiotherapy?")
    page.get_by_label("Presenter").select_option("surgeon")
    page.get_by_label("Triage").select_option("full_discussion")
    page.get_by_role("button", name="List on this meeting").click()
    page.wait_for_url(re.compile(rf"/mdt/meetings/{tomorrow_id}$"))
    assert page.locator("tr.mdt-case").count() == 1
    assert "Restage after radiotherapy?" in page.locator("tr.mdt-case").inner_text()
    page.goto(f"/mdt/meetings/{meeting_id}")
    assert page.locator("tr.mdt-case").count() == 3

    # The agenda, then as printed: A4, one page per case, none half empty or blank.
    page.get_by_role("link", name="Agenda and print").click()
    assert page.locator("section.agenda-case").count() == 3
    assert (
        "Stabilise T8 before radiotherapy?"
        in page.locator("section.agenda-case").first.inner_text()
    )
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "mdt-agenda.png", full_page=True)
    page.emulate_media(media="print")
    printed = PdfReader(io.BytesIO(page.pdf(prefer_css_page_size=True)))
    # (NFKC: the PDF's ligatures, "ﬁ", read as their letters)
    texts = [" ".join(normalize("NFKC", p.extract_text()).split()) for p in printed.pages]
    assert len(texts) == 3, [t[:80] for t in texts]
    for text, mrn, question in zip(texts, mrns, questions, strict=True):
        assert mrn in text and question in text, text
    page.emulate_media(media="screen")

    # Attendance: the core specialties of the metastatic spine team.
    page.goto(f"/mdt/meetings/{meeting_id}")
    assert page.locator(".quorum").inner_text() == "Not quorate"
    for username, specialty in (
        ("surgeon", "spinal_surgery"),
        ("viewer", "clinical_oncology"),
        ("surgeon2", "radiology"),
    ):
        page.get_by_label("Who attended").select_option(username)
        page.get_by_label("As", exact=True).select_option(specialty)
        page.get_by_role("button", name="Add to the attendance").click()
        page.wait_for_url(re.compile(r"#attendance$"))
    assert page.locator(".quorum").inner_text() == "Quorate"
    assert not serious_violations(page)

    # Live: one case at a time, the outcome form beside the agenda.
    page.get_by_role("link", name="Run live").click()
    decisions = ("plan_surgery", "plan_oncology", "plan_surveillance")
    for number, decision in enumerate(decisions, start=1):
        page.wait_for_url(re.compile(rf"/mdt/meetings/{meeting_id}/live/\d+$"))
        assert f"case {number} of 3" in page.locator("h1").inner_text()
        assert questions[number - 1] in page.locator(".live-agenda").inner_text()
        form = page.locator("#mdt-form")
        form.get_by_label("Decision").select_option(decision)
        for specialty in ("Spinal surgery", "Clinical oncology", "Radiology"):
            form.get_by_label(specialty, exact=True).check()
        form.get_by_label("Rationale").fill(f"Agreed by the MDT: case {number}.")
        if decision == "plan_surveillance":
            later = (local_now + timedelta(days=90)).date().isoformat()
            form.locator("input[name=next_due]").fill(later)
        # The Tokuhashi components the prefill could not give (all or none).
        selects = form.locator("fieldset[data-score=tokuhashi] select")
        for i in range(selects.count()):
            if not selects.nth(i).input_value():
                selects.nth(i).select_option(index=2)
        if number == 2:
            assert not serious_violations(page)
            if backend == "sqlite":
                page.screenshot(path=SHOTS / "mdt-live.png", full_page=True)
            # Keyboard: the previous case and back, each a link with an access key (Alt+P,
            # Alt+N; Playwright's synthetic keys do not reach Chromium's access keys, so
            # the test follows them by focus and Enter, as the Tab order does).
            assert page.locator("#previous-case").get_attribute("accesskey") == "p"
            assert page.locator("#next-case").get_attribute("accesskey") == "n"
            page.locator("#previous-case").focus()
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(rf"/live/{pathway_ids[0]}$"))
            assert "Recorded: " in page.locator("#live-recorded").inner_text()
            page.locator("#next-case").focus()
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(rf"/live/{pathway_ids[1]}$"))
            form = page.locator("#mdt-form")
            form.get_by_label("Decision").select_option(decision)
            for specialty in ("Spinal surgery", "Clinical oncology", "Radiology"):
                form.get_by_label(specialty, exact=True).check()
            form.get_by_label("Rationale").fill(f"Agreed by the MDT: case {number}.")
            selects = form.locator("fieldset[data-score=tokuhashi] select")
            for i in range(selects.count()):
                if not selects.nth(i).input_value():
                    selects.nth(i).select_option(index=2)
        when_it_happened(page, datetime.now(UTC))  # as the meeting runs
        form.get_by_role("button", name="Record MDT outcome").click()
    # After the last case: back on the meeting, every outcome recorded.
    page.wait_for_url(re.compile(rf"/mdt/meetings/{meeting_id}#cases$"))
    assert page.locator(".badge", has_text="Recorded").count() == 3
    assert page.locator(".outcome-outstanding").count() == 0

    # The GP letter of the first case, downloaded, as a letter.
    page.locator("tr.mdt-case").first.get_by_role("link", name="Letters").click()
    page.get_by_role("button", name="Generate the GP letter (PDF)").click()
    assert (
        page.locator(".alert-success", has_text="Outcome letter to the GP generated.").count() == 1
    )
    assert not serious_violations(page)
    with page.expect_download() as download:
        page.locator("li.document a").first.click()
    pdf = tmp_path / "gp-letter.pdf"
    download.value.save_as(pdf)
    text = " ".join(PdfReader(pdf).pages[0].extract_text().split())
    assert "Jane Doe" in text and "MDT decision: Surgery" in text
    # Dated the day it was generated (the day the test started, or the next after midnight).
    days = {local_now, datetime.now(zone)}
    assert any(f"{day.day} {day:%B %Y}" in text for day in days), text


def test_a_task_added_on_the_pathway_page_is_on_my_work(live_app, page, backend):
    """A coordinator adds a task and a tracking note from the Tracking panel and finds the
    task on My work, overdue ones first; the pages are axe-clean."""
    from tests.helpers import new_pathway
    from tracker.tracking import services as tracking

    now = datetime.now(UTC)
    with live_app.app_context():
        coordinator = db.session.query(User).filter_by(username="coordinator").one()
        pathway = new_pathway(coordinator, referral=now - timedelta(days=70))
        other = new_pathway(coordinator, referral=now - timedelta(days=20), urgency="urgent")
        past = now - timedelta(days=4)
        tracking.add_task(
            other,
            "Ring the patient with the biopsy date",
            "coordinator",
            (past + timedelta(days=1)).date(),
            coordinator,
            occurred_at=past,
            now=past,
        )
        tracking.add_tracking_note(other, "Biopsy booked; patient aware.", coordinator)
        db.session.commit()
        pathway_id = pathway.id
        db.session.remove()

    _log_in(page, "coordinator")
    page.get_by_role("heading", name="My work").wait_for()
    page.goto(f"/pathways/{pathway_id}")
    panel = page.locator("#tracking")
    assert "No open task." in panel.inner_text()
    due = datetime.now(ZoneInfo("Europe/London")).date() + timedelta(days=3)

    def task_form(p):
        p.get_by_label("What needs doing").fill("Chase the MRI report")
        p.get_by_label("Owner").select_option("coordinator")
        p.get_by_label("Due by").fill(due.isoformat())
        when_it_happened(p, datetime.now(UTC))
        assert not serious_violations(p)

    panel.get_by_role("link", name="Add task").click()
    task_form(page)
    page.locator("form [type=submit]").last.click()
    page.wait_for_url(re.compile(r"/pathways/\d+(#event-\d+)?$"))
    assert "Chase the MRI report" in page.locator("#tracking").inner_text()
    page.locator("#tracking").get_by_role("link", name="Add tracking note").click()
    page.get_by_label("Tracking note").fill("MRI requested; radiology chased.")
    when_it_happened(page, datetime.now(UTC))
    page.locator("form [type=submit]").last.click()
    page.wait_for_url(re.compile(r"/pathways/\d+(#event-\d+)?$"))
    assert "MRI requested; radiology chased." in page.locator("#tracking").inner_text()
    assert not serious_violations(page)
    if backend == "sqlite":
        page.locator("#tracking").screenshot(path=SHOTS / "tracking.png")

    page.get_by_role("link", name="My work", exact=True).click()
    page.get_by_role("heading", name="My work").wait_for()
    tasks = page.locator("#my-tasks tbody tr")
    assert tasks.count() == 2
    assert "Ring the patient" in tasks.nth(0).inner_text()  # overdue first
    assert "Overdue" in tasks.nth(0).inner_text()
    assert "Chase the MRI report" in tasks.nth(1).inner_text()
    assert "Biopsy booked" in page.locator("#my-clocks").inner_text()
    assert not serious_violations(page)
    if backend == "sqlite":
        page.screenshot(path=SHOTS / "my-work.png", full_page=True)
    # Done from the panel: the task leaves My work.
    tasks.nth(1).get_by_role("link").click()
    page.locator("#tracking").get_by_role("link", name=re.compile("^Done")).click()
    when_it_happened(page, datetime.now(UTC))
    page.locator("form [type=submit]").last.click()
    page.wait_for_url(re.compile(r"/pathways/\d+(#event-\d+)?$"))
    page.get_by_role("link", name="My work", exact=True).click()
    assert page.locator("#my-tasks tbody tr").count() == 1
