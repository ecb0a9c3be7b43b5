"""The layout on a phone (390 px), a tablet (768 and 1024 px) and a desktop (1366 px).

One browser and one app (the demo's 60 pathways on SQLite: layout does not depend on
the backend) for the whole module. On each page and width: the page never scrolls
sideways (wide tables scroll inside their own box), no menu entry, button or label is
cut off, charts fit their container and draw their words inside themselves, and axe
finds nothing serious. The main menu folds behind "Menu" on narrow screens and works
without JavaScript; at 1024 px and wider it is one line. Saves the guide's screenshots
of the phone and tablet layouts.
"""

from __future__ import annotations

import os
import re
import threading

import pytest
from flask_migrate import upgrade
from werkzeug.serving import make_server

from tests.conftest import PASSWORD, make_app
from tests.helpers import make_users, totp_code, whole_responses
from tests.test_browser import CHROMIUM, SHOTS, nav, serious_violations
from tracker.extensions import db

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="needs Debian's chromium (apt-get install chromium; .ci/run does)",
    ),
]

WIDTHS = (390, 768, 1024, 1366)
PAGES = ("worklist", "pathway", "mdt_outcome", "mdt_list", "reports", "this_week")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The app on a scratch SQLite file with the demo data, served on a free port."""
    from sqlalchemy import func, select
    from sqlalchemy.pool import NullPool

    from tracker.demo import seed
    from tracker.engine.models import Event, Pathway

    url = f"sqlite:///{tmp_path_factory.mktemp('responsive') / 'tracker.db'}"
    app = make_app(
        url,
        SQLITE_EXPLICIT_TRANSACTIONS=False,
        SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool},
        WTF_CSRF_ENABLED=True,
    )
    with app.app_context():
        upgrade()
        make_users()
        seed(60, seed_value=7)
        db.session.commit()
        events = func.count(Event.id)
        busiest = db.session.scalar(
            select(Pathway.id).join(Event).group_by(Pathway.id).order_by(events.desc()).limit(1)
        )
        at_mdt = db.session.scalar(
            select(Pathway.id).where(Pathway.state == "mdt_review").order_by(Pathway.id).limit(1)
        )
        db.session.remove()
    assert busiest and at_mdt, "the demo has a long pathway and one waiting for its MDT"
    server = make_server("127.0.0.1", 0, whole_responses(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    urls = {
        "worklist": "/",
        "pathway": f"/pathways/{busiest}",
        "mdt_outcome": f"/pathways/{at_mdt}/mdt-outcome",
        "mdt_list": "/mdt/",
        "reports": "/reports/",
        "this_week": "/this-week?who=all",
    }
    yield f"http://127.0.0.1:{server.server_port}", urls
    server.shutdown()
    thread.join(timeout=10)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
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
        yield chromium
        chromium.close()


def _log_in(page, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    if username == "admin":
        page.get_by_label("Code").fill(totp_code())
        page.get_by_role("button", name="Continue").click()
    page.locator("nav[aria-label=Main] .nav-end").wait_for(state="attached")


@pytest.fixture(scope="module")
def coordinator(browser, demo):
    """One logged-in coordinator's page for the module; CSP reports fail the module."""
    base, _ = demo
    context = browser.new_context(base_url=base, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    blocked: list[str] = []
    page.on(
        "console",
        lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
    )
    _log_in(page, "coordinator")
    yield page
    context.close()
    assert not blocked, blocked


# What a page must not do at any width, measured in the browser.
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) {
    problems.push(`the page scrolls sideways: ${doc.scrollWidth} px wide in ${window.innerWidth}`);
  }
  const visible = (el) =>
    el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const cut = "nav a, nav summary, nav button, nav label, "
    + "main .btn, main label, main th, main .badge";
  for (const el of document.querySelectorAll(cut)) {
    if (!visible(el) || el.clientWidth === 0) continue;
    if (el.closest(".visually-hidden")) continue;  // for screen readers: clipped on purpose
    if (el.scrollWidth > el.clientWidth + 1) {
      const words = el.textContent.trim().slice(0, 60);
      problems.push(`cut off (${el.scrollWidth} > ${el.clientWidth} px): ${el.tagName} "${words}"`);
    }
  }
  // A table that does not scroll in its own box stays inside the column it is in (its
  // gutter aside): it never runs under the next column or off its card.
  for (const table of document.querySelectorAll("main table")) {
    if (!visible(table) || getComputedStyle(table).display === "block") continue;
    let box = table.parentElement;
    while (box && getComputedStyle(box).display === "contents") box = box.parentElement;
    if (["auto", "scroll"].includes(getComputedStyle(box).overflowX)) continue;
    const right = (el) => el.getBoundingClientRect().right;
    const over = Math.round(right(table) - right(box));
    if (over > 1) {
      const words = (table.caption || table).textContent.trim().slice(0, 40);
      problems.push(`table ${over} px wider than its column: "${words}"`);
    }
  }
  for (const svg of document.querySelectorAll("svg.chart")) {
    if (!visible(svg)) continue;
    const box = svg.getBoundingClientRect();
    const holder = svg.parentElement.getBoundingClientRect();
    if (box.width > holder.width + 1) {
      problems.push(`chart wider than its container: ${box.width} > ${holder.width}`);
    }
    const vb = svg.viewBox.baseVal;
    if (!vb || !vb.width) { problems.push("chart without a viewBox does not scale"); continue; }
    for (const t of svg.querySelectorAll("text")) {
      const b = t.getBBox();
      if (b.width === 0) continue;
      if (b.x < vb.x - 1 || b.x + b.width > vb.x + vb.width + 1) {
        problems.push(`chart words cut off at the edge: "${t.textContent.trim().slice(0, 60)}"`);
      }
    }
  }
  return problems;
}"""


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", PAGES)
def test_every_page_fits_the_screen(coordinator, demo, name, width):
    page = coordinator
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(demo[1][name])
    page.locator("main h1").first.wait_for()
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    assert not serious_violations(page)
    if width in (390, 1024) and name in ("worklist", "mdt_list", "reports"):
        shot = SHOTS / f"{name.replace('_', '-')}-{width}.png"
        page.screenshot(path=shot, full_page=width == 390)


@pytest.mark.parametrize("width", (768, 1024, 1366))
@pytest.mark.parametrize("name", PAGES)
def test_forms_and_pages_with_the_menu_open_fit_too(coordinator, demo, name, width):
    """With every menu group unfolded (as a user might leave them) nothing spills out either."""
    page = coordinator
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(demo[1][name])
    menu = page.locator("nav[aria-label=Main]")
    if menu.locator(".nav-toggle-label").is_visible():
        menu.locator(".nav-toggle-label").click()
    for summary in menu.locator(".nav-list:not(.nav-end) summary").all():
        summary.click()
    assert page.evaluate(LAYOUT_PROBLEMS) == []


def test_on_a_phone_the_menu_folds_and_works_without_javascript(browser, demo):
    base, _ = demo
    context = browser.new_context(
        base_url=base, viewport={"width": 390, "height": 844}, java_script_enabled=False
    )
    page = context.new_page()
    page.set_default_timeout(15000)
    _log_in(page, "coordinator")
    page.goto("/")
    menu = page.locator("nav[aria-label=Main]")
    # Folded: the brand and "Menu" take one line, the links are out of the way.
    assert menu.bounding_box()["height"] < 70
    assert not menu.get_by_role("link", name="Worklist").is_visible()
    menu.locator(".nav-toggle-label").click()
    assert menu.get_by_role("link", name="Worklist").is_visible()
    assert not menu.get_by_role("link", name="MDT list").is_visible()
    page.screenshot(path=SHOTS / "phone-menu.png")
    nav(page, "MDT", "MDT list")
    page.wait_for_url(re.compile(r"/mdt/$"))
    page.get_by_role("heading", name=re.compile("MDT list")).wait_for()
    # And the account menu, last: log out from the phone.
    menu.locator(".nav-toggle-label").click()
    menu.locator(".nav-group-end summary").click()
    menu.get_by_role("button", name="Log out").click()
    page.get_by_label("Username").wait_for()
    context.close()


@pytest.mark.parametrize("username", ("coordinator", "surgeon", "admin"))
def test_at_1024_px_the_menu_is_one_line(browser, demo, username):
    """Every role's menu (the coordinator's, with My work and Views, is the longest) on one
    line, no entry broken across lines. It is full: a new entry goes into a group."""
    base, _ = demo
    context = browser.new_context(base_url=base, viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15000)
    _log_in(page, username)
    page.goto("/")
    menu = page.locator("nav[aria-label=Main]")
    assert menu.bounding_box()["height"] < 60
    entries = menu.locator("summary, .nav-list > li > a").all()
    tops = {round(e.bounding_box()["y"]) for e in entries}
    assert len(tops) == 1, tops
    spare = page.evaluate(
        """() => {
          const menu = document.querySelector('.nav-menu');
          const used = [...menu.children].reduce((w, c) => w + c.getBoundingClientRect().width, 0);
          return menu.getBoundingClientRect().width - used;
        }"""
    )
    assert spare >= 10, f"only {spare} px left in the menu"
    context.close()
