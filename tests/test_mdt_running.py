"""Running an MDT meeting: the prepared agenda and its print page, live mode (the pathway
page's outcome form naming the meeting: the same events and clocks), the outcome
outstanding flag, rolling the cases not reached over, the inquorate flag, and the
outcome letters (PDF, stored per generation, audited; templates an administrator edits)."""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
import time_machine
from pypdf import PdfReader
from sqlalchemy import func, select

import tracker
from tests.helpers import driver
from tests.test_mdt_meetings import TEAM, _audited, _in_review, _list, _meeting
from tests.test_query_budget import page_queries
from tracker.core.clock import local_zone
from tracker.core.db import utcnow
from tracker.engine.errors import InvalidData
from tracker.engine.models import Event, PathwayClock
from tracker.mdt import letters
from tracker.mdt import services as mdt
from tracker.mdt.models import GeneratedDocument, LetterTemplate, MdtCase
from tracker.teams.services import set_teams


def shown(response) -> str:
    return html.unescape(response.get_data(as_text=True))


class _Form(HTMLParser):
    """The values a browser would send from the form ``form_id`` as it stands."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id, self.inside, self.action = form_id, False, None
        self.values: list[tuple[str, str]] = []
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == self.form_id:
            self.inside, self.action = True, a.get("action")
        if not self.inside:
            return
        if tag == "input" and a.get("name") and a.get("type") != "submit":
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.values.append((a["name"], a.get("value") or ""))
        elif tag == "select":
            self._select, self._options = a.get("name"), []
        elif tag == "option" and self._select:
            self._options.append((a.get("value") or "", "selected" in a))
        elif tag == "textarea":
            self._textarea, self._text = a.get("name"), ""

    def handle_data(self, data):
        if self._textarea:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "form" and self.inside:
            self.inside = False
        elif tag == "select" and self._select:
            chosen = [v for v, s in self._options if s] or [self._options[0][0]]
            self.values.append((self._select, chosen[0]))
            self._select = None
        elif tag == "textarea" and self._textarea:
            text = self._text
            text = text[2:] if text.startswith("\r\n") else text.removeprefix("\n")
            self.values.append((self._textarea, text))
            self._textarea = None


def problems(response) -> list[str]:
    return re.findall(r"(?:alert-danger|invalid-feedback)[^>]*>([^<]*)", shown(response))


def form_of(page: str, form_id: str = "mdt-form") -> tuple[str | None, dict[str, list[str]]]:
    parser = _Form(form_id)
    parser.feed(page)
    out: dict[str, list[str]] = {}
    for name, value in parser.values:
        out.setdefault(name, []).append(value)
    return parser.action, out


def _outcome_post(values: dict[str, list[str]], decision="plan_surgery") -> dict:
    """What the coordinator completes on the prefilled form: the time it happened (the
    form presets the date only), the decision, who was there, the rationale, and the
    Tokuhashi components the prefill could not give."""
    now = utcnow().astimezone(local_zone())
    day = (values.get("occurred_at") or [""])[0] or now.date().isoformat()
    tokuhashi = {
        f"tokuhashi__{c}": values.get(f"tokuhashi__{c}", [""])[0] or "1"
        for c in ("general_condition", "extraspinal_bone_metastases", "vertebral_metastases")
    }
    return {
        **values,
        **tokuhashi,
        "tokuhashi__visceral_metastases": values["tokuhashi__visceral_metastases"][0] or "2",
        "tokuhashi__palsy": values["tokuhashi__palsy"][0] or "2",
        "occurred_at": [day, now.strftime("%H:%M")],
        "decision": [decision],
        "disciplines": ["spinal_surgery", "clinical_oncology", "radiology"],
        "rationale": ["SINS 13, unstable: stabilise, then radiotherapy."],
    }


def _after(meeting, hours=2):
    return mdt.starts_at(meeting) + timedelta(hours=hours)


def _decide(drive, meeting, trigger="plan_surgery", **over):
    """An MDT outcome recorded at the meeting, naming it."""
    at = _after(meeting, 1)
    drive.t = at - timedelta(hours=1)
    data = {
        "meeting_date": meeting.meeting_date.isoformat(),
        "meeting_id": meeting.id,
        "disciplines": ["spinal_surgery", "radiology"],
        "rationale": "Agreed at the MDT.",
        **over,
    }
    return drive.do(trigger, data, now=at)


# -- the prepared agenda --------------------------------------------------------------------


def _prepared(users):
    """A pathway with a lesion scored, a biopsy, an earlier MDT outcome and the scores of
    the patient, back in MDT review."""
    drive = _in_review(users)
    drive.do("plan_oncology")  # the earlier outcome
    drive.do("refer_to_mdt", {"reason": "restaging"})
    drive.do(
        "record_lesion",
        {
            "lesion_ref": "T8",
            "levels": "T8",
            "finding": "progressing",
            "sins": {
                "location": 2,
                "pain": 3,
                "bone_lesion": 2,
                "alignment": 2,
                "collapse": 2,
                "posterolateral": 1,
            },
            "bilsky_grade": "2",
        },
    )
    drive.do("record_assessment", {"ecog": 2, "pain_nrs": 6})
    return drive


def test_the_agenda_shows_each_case_prepared_with_dated_scores(client, login, users, session):
    meeting = _meeting(users)
    drive = _prepared(users)
    _list(drive, meeting, question="Stabilise T8 before radiotherapy?")
    session.commit()
    login("coordinator")
    page = shown(client.get(f"/mdt/meetings/{meeting.id}/agenda"))
    (case,) = re.findall(r'<section class="agenda-case.*?</section>', page, re.S)
    assert "Stabilise T8 before radiotherapy?" in case
    history_steps = session.scalars(
        select(Event).where(Event.pathway_id == drive.pathway.id).order_by(Event.seq)
    ).all()
    by_trigger = {e.trigger: e for e in history_steps}

    def local(event):
        from tracker.web.filters import when

        return when(event.occurred_at)

    imaging = re.search(r'agenda-imaging">(.*?)</dd>', case, re.S).group(1)
    assert local(by_trigger["record_imaging"]) in imaging and "MRI" in imaging
    sins = re.search(r'data-score="SINS">(.*?)</tr>', case, re.S).group(1)
    assert "12 (potentially unstable)" in sins
    assert local(by_trigger["record_lesion"]) in sins and "lesion T8" in sins
    bilsky = re.search(r'data-score="Bilsky">(.*?)</tr>', case, re.S).group(1)
    assert local(by_trigger["record_lesion"]) in bilsky and "lesion T8" in bilsky
    ecog = re.search(r'data-score="ECOG">(.*?)</tr>', case, re.S).group(1)
    assert ">2<" in ecog and local(by_trigger["record_assessment"]) in ecog
    assert "NOMS reading" in case
    prior = re.search(r'agenda-prior">(.*?)</dd>', case, re.S).group(1)
    assert "Oncology treatment" in prior
    clocks_running = re.search(r'agenda-clocks">(.*?)</dd>', case, re.S).group(1)
    running = session.scalars(
        select(PathwayClock).where(
            PathwayClock.pathway_id == drive.pathway.id, PathwayClock.status == "running"
        )
    ).all()
    assert running, "the pathway has a clock running"
    from tracker.engine.clocks import LABELS

    for row in running:
        assert LABELS[row.clock] in clocks_running
    assert "To be discussed" in case
    # The print page: A4, each case on a page of its own, the first with the heading.
    assert "agenda.css" in page
    css = (Path(tracker.__file__).parent / "static" / "agenda.css").read_text()
    assert "size: A4 portrait" in css
    assert ".agenda-case { break-before: page" in css
    assert ".agenda-case:first-of-type { break-before: auto; }" in css
    # No case is kept whole on one page (that leaves half pages empty).
    assert "agenda-case { break-inside: avoid" not in css.replace(".agenda-case tr", "")


def test_the_agenda_runs_a_fixed_number_of_queries(client, login, users, session):
    meeting = _meeting(users)
    _list(_prepared(users), meeting)
    session.commit()
    login("coordinator")
    urls = (f"/mdt/meetings/{meeting.id}/agenda", f"/mdt/meetings/{meeting.id}")
    client.get(urls[0])
    one = [page_queries(client, url) for url in urls]
    for _ in range(4):
        _list(_prepared(users), meeting)
    session.commit()
    five = [page_queries(client, url) for url in urls]
    assert len(re.findall('class="agenda-case', client.get(urls[0]).get_data(as_text=True))) == 5
    assert one == five


def test_the_agenda_hides_another_teams_patient(client, login, users, session):
    meeting = _meeting(users)
    drive = _in_review(users)
    _list(drive, meeting)
    set_teams(users["viewer"], ["spine"])
    session.commit()
    login("viewer")
    page = shown(client.get(f"/mdt/meetings/{meeting.id}/agenda"))
    assert "A patient of another team" in page
    assert drive.pathway.patient.mrn not in page and "Stabilise T8" not in page


# -- live mode ------------------------------------------------------------------------------


def _clock_rows(session, pathway_id):
    rows = session.scalars(
        select(PathwayClock)
        .where(PathwayClock.pathway_id == pathway_id)
        .order_by(PathwayClock.clock, PathwayClock.started_at)
    )
    return [
        (r.clock, r.episode, r.started_at, r.stopped_at, r.due_at, r.status, r.wait) for r in rows
    ]


def test_an_outcome_recorded_live_is_the_one_recorded_from_the_pathway_page(
    client, login, users, session
):
    referral = utcnow() - timedelta(days=20)
    page_drive = driver(users, referral=referral).walk_to("mdt_review")
    live_drive = driver(users, referral=referral).walk_to("mdt_review")
    third = _in_review(users)
    meeting = _meeting(users, days=2)
    for drive in (page_drive, live_drive, third):
        _list(drive, meeting)
    session.commit()
    with time_machine.travel(_after(meeting), tick=False):
        login("coordinator")
        from_page = shown(client.get(f"/pathways/{page_drive.pathway.id}/mdt-outcome"))
        live = shown(client.get(f"/mdt/meetings/{meeting.id}/live/{live_drive.pathway.id}"))
        assert "case 2 of 3" in live and 'accesskey="n"' in live and 'accesskey="p"' in live
        assert "Stabilise T8" in live  # the agenda beside the form
        _, page_form = form_of(from_page)
        action, live_form = form_of(live)
        assert action == f"/pathways/{live_drive.pathway.id}/mdt-outcome?live={meeting.id}"
        # The same form, prefilled the same way (the listing's meeting among the rest).
        ignore = {"request_id", "expected_version", "csrf_token"}
        assert {k: v for k, v in page_form.items() if k not in ignore} == {
            k: v for k, v in live_form.items() if k not in ignore
        }
        assert page_form["meeting_id"] == [str(meeting.id)]
        assert page_form["meeting_date"] == [meeting.meeting_date.isoformat()]
        response = client.post(
            f"/pathways/{page_drive.pathway.id}/mdt-outcome", data=_outcome_post(page_form)
        )
        assert response.status_code == 302, problems(response)
        response = client.post(action, data=_outcome_post(live_form))
        assert response.status_code == 302, problems(response)
        # On to the next case, without going back to a list.
        assert response.headers["Location"].endswith(
            f"/mdt/meetings/{meeting.id}/live?after={live_drive.pathway.id}"
        )
        following = client.get(response.headers["Location"])
        assert following.headers["Location"].endswith(
            f"/mdt/meetings/{meeting.id}/live/{third.pathway.id}"
        )
    session.expire_all()
    events = [
        session.scalars(
            select(Event).where(Event.pathway_id == d.pathway.id).order_by(Event.seq.desc())
        ).first()
        for d in (page_drive, live_drive)
    ]
    assert [e.trigger for e in events] == ["plan_surgery", "plan_surgery"]
    assert events[0].data == events[1].data
    assert events[0].data["meeting_id"] == meeting.id
    assert events[0].data["meeting_date"] == meeting.meeting_date.isoformat()
    assert events[0].occurred_at == events[1].occurred_at
    assert (events[0].from_state, events[0].to_state) == (events[1].from_state, events[1].to_state)
    assert _clock_rows(session, page_drive.pathway.id) == _clock_rows(
        session, live_drive.pathway.id
    )
    assert page_drive.pathway.state == live_drive.pathway.state == "surgery_scheduled"


def test_live_mode_shows_a_recorded_outcome_and_a_wrong_one_beside_the_agenda(
    client, login, users, session
):
    meeting = _meeting(users, days=2)
    drive = _in_review(users)
    _list(drive, meeting)
    session.commit()
    with time_machine.travel(_after(meeting), tick=False):
        login("coordinator")
        live = shown(client.get(f"/mdt/meetings/{meeting.id}/live", follow_redirects=True))
        assert "case 1 of 1" in live
        action, values = form_of(live)
        bad = _outcome_post(values)
        bad["rationale"] = [""]
        response = client.post(action, data=bad)
        assert response.status_code == 422
        text = shown(response)
        assert "Back to the meeting" in text and f"/mdt/meetings/{meeting.id}/live/" in text
        response = client.post(action, data=_outcome_post(values))
        assert response.status_code == 302
        done = shown(client.get(f"/mdt/meetings/{meeting.id}/live/{drive.pathway.id}"))
        assert "Recorded: " in done and "Surgery" in done
        assert "Generate the GP letter" in done


def test_an_outcome_naming_a_meeting_the_case_is_not_listed_on_is_refused(users, session):
    meeting, other = _meeting(users, days=2), _meeting(users, days=9)
    drive = _in_review(users)
    _list(drive, meeting)
    before = session.scalar(select(func.count()).select_from(Event))
    with time_machine.travel(_after(other), tick=False), pytest.raises(InvalidData) as refused:
        _decide(drive, other)
    assert "This pathway is not listed on" in refused.value.errors["meeting_id"][0]
    assert "list it on that meeting first" in refused.value.errors["meeting_id"][0]
    with time_machine.travel(_after(meeting), tick=False):
        with pytest.raises(InvalidData) as wrong_day:
            _decide(drive, meeting, meeting_date=other.meeting_date.isoformat())
        assert "give that date" in " ".join(wrong_day.value.errors["meeting_date"])
        with pytest.raises(InvalidData) as nowhere:
            _decide(drive, meeting, meeting_id=2_000_000_000)
        assert "There is no MDT meeting" in nowhere.value.errors["meeting_id"][0]
    assert session.scalar(select(func.count()).select_from(Event)) == before
    assert drive.pathway.state == "mdt_review"


def test_an_outcome_without_a_meeting_is_recorded_by_date_as_before(users, session):
    drive = _in_review(users)
    event = drive.do("plan_surgery").event
    assert "meeting_id" not in event.data


# -- after the meeting ----------------------------------------------------------------------


def test_cases_not_reached_roll_over_to_the_next_meeting_with_one_action(
    client, login, users, session
):
    meeting, later = _meeting(users, days=2), _meeting(users, days=9)
    decided, waiting, also = _in_review(users), _in_review(users), _in_review(users)
    for drive in (decided, waiting, also):
        _list(drive, meeting)
    session.commit()
    with time_machine.travel(_after(meeting, 3), tick=False):
        login("coordinator")
        _decide(decided, meeting)
        session.commit()
        page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
        assert "Outcome outstanding</strong> for 2 cases" in page
        assert page.count('class="badge text-bg-warning outcome-outstanding"') == 2
        assert "outcome outstanding: 2" in shown(client.get("/mdt/meetings"))
        response = client.post(f"/mdt/meetings/{meeting.id}/roll-over")
        assert response.status_code == 302
        assert response.headers["Location"].endswith(f"/mdt/meetings/{later.id}")
        session.expire_all()
        moved = {c.pathway_id: c for c in later.cases}
        assert set(moved) == {waiting.pathway.id, also.pathway.id}
        old = {c.pathway_id: c for c in meeting.cases}
        assert old[waiting.pathway.id].rolled_to_id == later.id
        assert old[decided.pathway.id].rolled_to_id is None
        assert moved[waiting.pathway.id].question == old[waiting.pathway.id].question
        assert moved[waiting.pathway.id].event.data["meeting_id"] == later.id
        page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
        assert "Outcome outstanding" not in page and page.count("Not reached") == 2
        (entry,) = _audited(session, "mdt_cases_rolled_over")
        assert json.loads(entry.detail)["to_meeting"] == later.id
        assert len(_audited(session, "mdt_case_rolled_over")) == 2
        again = client.post(f"/mdt/meetings/{meeting.id}/roll-over")
        assert again.status_code == 303
        assert "nothing to roll over" in shown(client.get(f"/mdt/meetings/{meeting.id}"))


def test_a_roll_over_is_all_or_nothing(client, login, users, session):
    meeting, later = _meeting(users, days=2), _meeting(users, days=9)
    first, second = _in_review(users), _in_review(users)
    for drive in (first, second):
        _list(drive, meeting)
    _list(second, later)  # already on the next meeting: its listing there is refused
    session.commit()
    events = session.scalar(select(func.count()).select_from(Event))
    with time_machine.travel(_after(meeting, 3), tick=False):
        login("coordinator")
        response = client.post(f"/mdt/meetings/{meeting.id}/roll-over")
        assert response.status_code == 303
        page = shown(client.get(f"/mdt/meetings/{meeting.id}"))
        assert "could not be rolled over: This pathway is already listed on that meeting" in page
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Event)) == events
    assert all(c.rolled_to_id is None for c in meeting.cases)
    assert [c.pathway_id for c in later.cases] == [second.pathway.id]
    assert _audited(session, "mdt_cases_rolled_over") == []


def test_a_roll_over_needs_a_later_meeting_and_a_started_one(users, session):
    meeting = _meeting(users, days=2)
    _list(_in_review(users), meeting)
    with pytest.raises(InvalidData) as early:
        mdt.roll_over(meeting, users["coordinator"], utcnow())
    assert "has not started" in early.value.errors["meeting"][0]
    with pytest.raises(InvalidData) as nowhere:
        mdt.roll_over(meeting, users["coordinator"], _after(meeting))
    assert "create the next meeting" in nowhere.value.errors["meeting"][0]


def test_outcomes_of_an_inquorate_meeting_are_flagged(client, login, users, session):
    meeting = _meeting(users, days=2)
    drive = _in_review(users)
    _list(drive, meeting)
    session.commit()
    with time_machine.travel(_after(meeting, 3), tick=False):
        login("coordinator")
        _decide(drive, meeting)
        session.commit()
        row = re.search(
            r'data-case="\d+">(.*?)</tr>', shown(client.get(f"/mdt/meetings/{meeting.id}")), re.S
        )
        assert "Inquorate meeting" in row.group(1)
        assert "Decided at an inquorate meeting" in shown(
            client.get(f"/mdt/meetings/{meeting.id}/agenda")
        )
        for username, specialty in (
            ("surgeon", "spinal_surgery"),
            ("viewer", "clinical_oncology"),
            ("surgeon2", "radiology"),
        ):
            mdt.record_attendance(meeting, username, specialty, users["coordinator"])
        session.commit()
        assert "Inquorate" not in shown(client.get(f"/mdt/meetings/{meeting.id}"))


# -- letters --------------------------------------------------------------------------------


def _decided_case(users, session, meeting=None):
    meeting = meeting or _meeting(users, days=2)
    drive = _in_review(users)
    _list(drive, meeting)
    return meeting, drive


def _pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def test_a_gp_letter_is_a_pdf_stored_per_generation_and_audited(client, login, users, session):
    meeting, drive = _decided_case(users, session)
    (case,) = meeting.cases
    session.commit()
    url = f"/mdt/pathways/{drive.pathway.id}/cases/{case.id}/letters/gp"
    with time_machine.travel(_after(meeting, 3), tick=False):
        login("coordinator")
        early = client.post(url, data={"next": f"/mdt/meetings/{meeting.id}"})
        assert early.status_code == 303
        assert "No MDT outcome is recorded for this case yet" in shown(
            client.get(f"/mdt/meetings/{meeting.id}")
        )
        assert session.scalar(select(func.count()).select_from(GeneratedDocument)) == 0
        _decide(drive, meeting)
        session.commit()
        response = client.post(url, data={"next": f"/mdt/meetings/{meeting.id}"})
        assert response.status_code == 302
        assert response.headers["Location"].endswith(f"/mdt/meetings/{meeting.id}")
    (document,) = session.scalars(select(GeneratedDocument)).all()
    assert (document.pathway_id, document.case_id, document.kind) == (
        drive.pathway.id,
        case.id,
        "gp",
    )
    assert document.sha256 == hashlib.sha256(document.content).hexdigest()
    assert document.generated_by_id == users["coordinator"].id
    text = _pdf_text(document.content)
    day = meeting.meeting_date
    assert "Jane Doe" in text
    assert "MDT decision: Surgery" in text
    assert f"{day.day} {day:%B %Y}" in text
    (entry,) = _audited(session, "letter_generated")
    assert entry.pathway_id == drive.pathway.id
    assert json.loads(entry.detail)["sha256"] == document.sha256
    # Once per generation: a second one is a second document.
    client.post("/logout")
    login("coordinator")
    client.post(url)
    assert session.scalar(select(func.count()).select_from(GeneratedDocument)) == 2
    assert len(_audited(session, "letter_generated")) == 2
    # Listed on the pathway page; downloaded as a view of the pathway, audited.
    page = shown(client.get(f"/pathways/{drive.pathway.id}"))
    link = f"/mdt/pathways/{drive.pathway.id}/documents/{document.id}"
    assert link in page and "Outcome letter to the GP" in page
    download = client.get(link)
    assert download.status_code == 200 and download.mimetype == "application/pdf"
    assert download.data == document.content
    views = [
        e for e in _audited(session, "view") if json.loads(e.detail)["endpoint"] == "mdt.document"
    ]
    assert len(views) == 1 and views[0].pathway_id == drive.pathway.id
    # Another team's reader is refused it; the wrong pathway in the URL is no document.
    set_teams(users["viewer"], ["spine"])
    session.commit()
    client.post("/logout")
    login("viewer")
    assert client.get(link).status_code == 403
    other = driver(users).pathway
    session.commit()
    assert client.get(f"/mdt/pathways/{other.id}/documents/{document.id}").status_code in (403, 404)
    # A coordinator of another team can neither write the letter nor open the case live.
    set_teams(users["coordinator"], ["spine"])
    session.commit()
    client.post("/logout")
    login("coordinator")
    assert client.post(url).status_code == 403
    assert client.get(f"/mdt/meetings/{meeting.id}/live/{drive.pathway.id}").status_code == 403
    assert session.scalar(select(func.count()).select_from(GeneratedDocument)) == 2


def test_the_patients_letter_is_in_plain_words(client, login, users, session):
    meeting, drive = _decided_case(users, session)
    (case,) = meeting.cases
    with time_machine.travel(_after(meeting, 3), tick=False):
        _decide(drive, meeting, trigger="plan_palliative")
        document = letters.generate(case, "patient", users["coordinator"], _after(meeting, 3))
    text = _pdf_text(document.content)
    assert "Dear Jane Doe" in text
    assert "care from the palliative care team" in text
    assert "multidisciplinary team meeting" in text


def test_an_administrator_edits_a_letter_template_and_a_bad_one_is_refused(
    client, login, users, session
):
    session.commit()
    login("admin")
    page = shown(client.get("/mdt/letter-templates/gp"))
    for name in letters.VARIABLES:
        assert f"<code>{name}</code>" in page
    template = session.scalar(select(LetterTemplate).where(LetterTemplate.kind == "gp"))
    assert template.body == letters.DEFAULTS["gp"][1]
    for bad, words in (
        ("<p>{{ patient_name </p>", "The template cannot be used"),
        ("<p>{{ shoe_size }}</p>", "'shoe_size' is undefined"),
        ("<p>{{ patient_name.__class__.__mro__ }}</p>", "The template cannot be used"),
    ):
        response = client.post("/mdt/letter-templates/gp", data={"subject": "Outcome", "body": bad})
        assert response.status_code == 422, bad
        assert words in shown(response), bad
        session.expire_all()
        assert template.body == letters.DEFAULTS["gp"][1]
    body = "<p>Dear Doctor,</p><p>{{ patient_name }}: {{ decision }} ({{ meeting_date }}).</p>"
    response = client.post(
        "/mdt/letter-templates/gp", data={"subject": "MDT: {{ patient_name }}", "body": body}
    )
    assert response.status_code == 302
    session.expire_all()
    assert template.body == body
    (entry,) = _audited(session, "letter_template_changed")
    assert json.loads(entry.detail)["kind"] == "gp"
    client.post("/logout")
    login("coordinator")
    assert client.get("/mdt/letter-templates/gp").status_code == 403
    meeting, drive = _decided_case(users, session)
    (case,) = meeting.cases
    with time_machine.travel(_after(meeting, 3), tick=False):
        _decide(drive, meeting)
        document = letters.generate(case, "gp", users["coordinator"], _after(meeting, 3))
    text = _pdf_text(document.content)
    assert "MDT: Jane Doe" in text and "Jane Doe: Surgery" in text


def test_letters_escape_what_was_recorded(users, session):
    meeting, drive = _decided_case(users, session)
    (case,) = meeting.cases
    with time_machine.travel(_after(meeting, 3), tick=False):
        _decide(drive, meeting, rationale="<b>Unstable</b> & painful")
        outcome = letters._outcome(case, mdt.engine.load_history(drive.pathway))
        _, page = letters.render_letter(
            "gp", letters.values_for(case, outcome, users["coordinator"], meeting.meeting_date)
        )
    assert "&lt;b&gt;Unstable&lt;/b&gt; &amp; painful" in page


# -- bad input, all four (refused with why, nothing written) ----------------------------------


def test_the_four_refusals_of_the_issue(users, session):
    meeting = _meeting(users, days=2)
    drive = _in_review(users)
    _list(drive, meeting)

    def steps() -> int:
        mine = select(func.count()).select_from(Event).where(Event.pathway_id == drive.pathway.id)
        return session.scalar(mine)

    before = steps()
    with pytest.raises(InvalidData) as twice:
        _list(drive, meeting)
    assert twice.value.errors["meeting_id"] == ["This pathway is already listed on that meeting"]
    past = _meeting(users, days=0, start_time="00:00")
    with pytest.raises(InvalidData) as gone:
        _list(_in_review(users), past)
    assert "choose one ahead" in gone.value.errors["meeting_id"][0]
    other = _meeting(users, days=9)
    with time_machine.travel(_after(other), tick=False), pytest.raises(InvalidData) as unlisted:
        _decide(drive, other)
    assert "not listed on" in unlisted.value.errors["meeting_id"][0]
    with pytest.raises(InvalidData) as unknown:
        mdt.record_attendance(meeting, "surgeon", "astrology", users["coordinator"])
    assert "Unknown specialty 'astrology'" in unknown.value.errors["specialty"][0]
    assert session.scalar(select(func.count()).select_from(MdtCase)) == 1
    assert meeting.attendance == []
    assert steps() == before
    assert meeting.team == TEAM


def test_a_letter_loads_nothing_from_outside_itself(tmp_path):
    """An administrator's template naming a file of the server or an address of the network
    gets nothing of it into the PDF: WeasyPrint is given no way to fetch."""
    picture = Path(tracker.__file__).parents[1] / "docs" / "screenshots" / "login.png"
    secret = tmp_path / "secret.css"
    secret.write_text("body { background: url(file:///etc/hostname); }")
    page = (
        f'<html><head><link rel="stylesheet" href="file://{secret}"></head><body>'
        f'<p>Letter</p><img src="file://{picture}" alt="x">'
        '<img src="http://127.0.0.1:9/tracker.png" alt="y"></body></html>'
    )
    pdf = PdfReader(io.BytesIO(letters.pdf_of(page)))
    assert "Letter" in pdf.pages[0].extract_text()
    assert list(pdf.pages[0].images) == []
