"""Outcome letters: one to the GP and one, in plain language, to the patient, per case.

Their templates are an administrator's to edit (``letter_template``, seeded with the
defaults below the first time a kind is used or edited). A template is Jinja rendered in
a sandbox (``SandboxedEnvironment``: no attribute of Python objects beyond plain values
reaches it) with autoescaping, from the variables in ``VARIABLES`` only; a template that
does not compile, or fails on sample values, is refused with Jinja's error. The letter is
HTML laid out on A4 and made a PDF by WeasyPrint, in Debian's DejaVu fonts, and stored as
generated (``generated_document``: the bytes, their SHA-256, who and when). Flush, never
commit.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from sqlalchemy import select

from tracker.core.clock import local_zone
from tracker.core.runtime import db_session, setting
from tracker.engine import services as engine
from tracker.engine import steps as d
from tracker.engine import tags, teams
from tracker.engine.errors import InvalidData, RoleNotAllowed
from tracker.engine.history import History, Step
from tracker.mdt.models import LETTER_KINDS, GeneratedDocument, LetterTemplate, MdtCase
from tracker.mdt.services import SPECIALTIES, quorum
from tracker.users.roles import CLINICAL

# The variables a template may use, with what each holds (listed on the edit page).
VARIABLES = {
    "patient_name": "The patient's name as addressed: given name then family name",
    "patient_given_name": "The patient's given name",
    "patient_family_name": "The patient's family name",
    "birth_date": "Date of birth, e.g. 4 March 1956",
    "mrn": "Hospital number (MRN)",
    "nhs_number": "NHS number, or empty",
    "gp_practice": "The GP practice, or empty",
    "meeting_date": "The date of the MDT meeting, e.g. 1 December 2026",
    "team": "The MDT: Spine, Bone sarcoma or Metastatic",
    "question": "The clinical question the meeting was asked",
    "decision": "The decision in clinical words (the MDT outcome form's)",
    "decision_plain": "The decision in plain words, for the patient",
    "rationale": "The MDT's rationale as recorded",
    "disciplines": "The disciplines present at the discussion",
    "chair": "Who chaired the meeting",
    "lead_surgeon": "The pathway's lead surgeon, or empty",
    "coordinator": "The pathway's care coordinator, or empty",
    "signed_by": "Who generates the letter",
    "today": "The date the letter is generated",
    "hospital": "The hospital's name (LETTER_HOSPITAL)",
    "quorate": "true when the meeting was quorate",
}

SAMPLE = {
    "patient_name": "Ann Example",
    "patient_given_name": "Ann",
    "patient_family_name": "Example",
    "birth_date": "4 March 1956",
    "mrn": "MRN0001",
    "nhs_number": "9434765919",
    "gp_practice": "Riverside Surgery",
    "meeting_date": "1 December 2026",
    "team": "Metastatic",
    "question": "Stabilise T8 before radiotherapy?",
    "decision": "Surgery",
    "decision_plain": "an operation",
    "rationale": "SINS 13, unstable; fit for surgery.",
    "disciplines": "Spinal surgery, Clinical oncology, Radiology",
    "chair": "Ms Chair",
    "lead_surgeon": "Mr Surgeon",
    "coordinator": "Ms Coordinator",
    "signed_by": "Ms Coordinator",
    "today": "2 December 2026",
    "hospital": "The Hospital",
    "quorate": True,
}

DEFAULTS = {
    "gp": (
        "MDT outcome: {{ patient_name }}, NHS {{ nhs_number or 'not recorded' }}",
        """<p>Dear Doctor{% if gp_practice %} ({{ gp_practice }}){% endif %},</p>
<p><strong>Re: {{ patient_name }}</strong>, born {{ birth_date }}, hospital number {{ mrn }}
{%- if nhs_number %}, NHS number {{ nhs_number }}{% endif %}.</p>
<p>Your patient was discussed at the {{ team }} multidisciplinary team (MDT) meeting on
<strong>{{ meeting_date }}</strong>, chaired by {{ chair }}.</p>
<p><strong>Question for the meeting:</strong> {{ question }}</p>
<p><strong>MDT decision:</strong> {{ decision }}</p>
<p><strong>Rationale:</strong> {{ rationale }}</p>
<p>Disciplines present: {{ disciplines }}.</p>
{% if not quorate %}<p><em>The meeting was not quorate: the decision will be confirmed at
the next quorate meeting.</em></p>{% endif %}
<p>We will see {{ patient_given_name }} to discuss this decision. Please contact the team's
care coordinator{% if coordinator %}, {{ coordinator }},{% endif %} with any questions.</p>
<p>Yours sincerely,</p>
<p>{{ signed_by }}<br>on behalf of the {{ team }} MDT
{%- if lead_surgeon %}, lead surgeon {{ lead_surgeon }}{% endif %}</p>""",
    ),
    "patient": (
        "What the team recommended for you",
        """<p>Dear {{ patient_name }},</p>
<p>On <strong>{{ meeting_date }}</strong>, the team of specialists who look after people with
your condition met to talk about your care. This meeting is called a multidisciplinary team
meeting, or MDT. Doctors, nurses and other specialists were there.</p>
<p><strong>What the team recommends:</strong> {{ decision_plain }}.</p>
<p>This is a recommendation. Nothing will happen without talking it through with you first,
and you can ask questions or ask for a second opinion at any time.</p>
<p>If you have any questions, please contact your care coordinator{% if coordinator %},
{{ coordinator }}{% endif %}. A copy of this letter has been sent to your GP.</p>
<p>With best wishes,</p>
<p>{{ signed_by }}<br>{{ team }} team, {{ hospital }}</p>""",
    ),
}

_ENV = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
MAY_GENERATE = CLINICAL


def _long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def template_for(kind: str) -> LetterTemplate:
    """The stored template of ``kind``, seeded with the default on first use."""
    if kind not in LETTER_KINDS:
        raise InvalidData({"kind": [f"Unknown letter '{kind}': one of {', '.join(LETTER_KINDS)}"]})
    found = db_session().scalar(select(LetterTemplate).where(LetterTemplate.kind == kind))
    if found is None:
        subject, body = DEFAULTS[kind]
        found = LetterTemplate(kind=kind, subject=subject, body=body)
        db_session().add(found)
        db_session().flush()
    return found


def _render(source: str, values: dict) -> str:
    return _ENV.from_string(source).render(**values)


def check_template(subject: str, body: str) -> dict[str, list[str]]:
    """Why a template cannot be used ({field: [messages]}), trying it on sample values."""
    errors: dict[str, list[str]] = {}
    for name, source, limit in (("subject", subject, 200), ("body", body, 20000)):
        if not (source or "").strip():
            errors[name] = [f"The {name} is empty: write it, or restore the default"]
            continue
        if len(source) > limit:
            errors[name] = [f"The {name} is too long: at most {limit} characters"]
            continue
        try:
            _render(source, SAMPLE)
        except TemplateError as exc:
            where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
            errors[name] = [
                f"The template cannot be used{where}: {exc.message or exc}. The variables "
                "are listed below the form."
            ]
    return errors


def save_template(kind: str, subject: str, body: str, actor, now: datetime) -> bool:
    """An administrator's change of a template; False when nothing changed."""
    if getattr(actor, "role", None) != "admin":
        raise RoleNotAllowed("Letter templates are edited by administrators.")
    template = template_for(kind)
    if errors := check_template(subject, body):
        raise InvalidData(errors)
    if (template.subject, template.body) == (subject, body):
        return False
    template.subject, template.body = subject, body
    template.updated_at, template.updated_by_id = now, actor.id
    db_session().flush()
    return True


def _outcome(case: MdtCase, history: History) -> Step | None:
    return history.latest_tagged(tags.MDT_OUTCOME, since=case.event.seq)


def values_for(case: MdtCase, outcome: Step, actor, today: date) -> dict:
    pathway, patient, meeting = case.pathway, case.pathway.patient, case.meeting
    data = outcome.data
    return {
        "patient_name": f"{patient.given_name} {patient.family_name}",
        "patient_given_name": patient.given_name,
        "patient_family_name": patient.family_name,
        "birth_date": _long_date(patient.birth_date),
        "mrn": patient.mrn,
        "nhs_number": patient.nhs_number or "",
        "gp_practice": patient.gp_practice or "",
        "meeting_date": _long_date(date.fromisoformat(data["meeting_date"])),
        "team": teams.label(meeting.team),
        "question": case.question,
        "decision": dict(d.mdt_outcome_choices()).get(outcome.trigger, outcome.label),
        "decision_plain": d.plain_words(outcome.trigger),
        "rationale": data.get("rationale", ""),
        "disciplines": ", ".join(SPECIALTIES.get(x, x) for x in data.get("disciplines", [])),
        "chair": meeting.chair.display_name if meeting.chair else "the chair",
        "lead_surgeon": pathway.lead_surgeon.display_name if pathway.lead_surgeon else "",
        "coordinator": pathway.coordinator.display_name if pathway.coordinator else "",
        "signed_by": actor.display_name,
        "today": _long_date(today),
        "hospital": setting("LETTER_HOSPITAL", "") or "The hospital",
        "quorate": quorum(meeting).quorate,
    }


# The letter's page: A4, letterhead, addressee block, date, subject, body. Fonts by name
# from fontconfig: Debian's fonts-dejavu-core.
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ subject }}</title>
<style>
@page { size: A4; margin: 20mm 20mm 22mm;
  @bottom-center { content: "{{ footer }} · page " counter(page) " of " counter(pages);
                   font: 8pt "DejaVu Sans"; color: #555; } }
body { font: 10.5pt/1.45 "DejaVu Sans", sans-serif; color: #111; }
.letterhead { border-bottom: 2px solid #005eb8; padding-bottom: 3mm; margin-bottom: 8mm; }
.letterhead .org { font-size: 14pt; font-weight: bold; color: #005eb8; }
.letterhead .team { font-size: 9.5pt; color: #333; }
.meta { display: flex; justify-content: space-between; margin-bottom: 8mm; font-size: 9.5pt; }
.to { white-space: pre-line; }
h1 { font-size: 12pt; margin: 0 0 5mm; }
p { margin: 0 0 3.5mm; }
</style></head>
<body>
<div class="letterhead"><div class="org">{{ hospital }}</div>
<div class="team">{{ team }} multidisciplinary team (MDT)</div></div>
<div class="meta"><div class="to">{{ to }}</div>
<div>{{ today }}<br>Hospital number {{ mrn }}</div></div>
<h1>{{ subject }}</h1>
{{ body }}
</body></html>"""


def render_letter(kind: str, values: dict) -> tuple[str, str]:
    """(subject, the letter's whole HTML page) from the stored template of ``kind``."""
    template = template_for(kind)
    try:
        subject = _render(template.subject, values)
        body = _render(template.body, values)
    except TemplateError as exc:
        raise InvalidData(
            {
                "kind": [
                    f"The {LETTER_KINDS[kind].lower()} template fails: {exc}. An "
                    "administrator can correct it under Letter templates."
                ]
            }
        ) from exc
    if kind == "gp":
        to = "\n".join(x for x in ("The GP", values["gp_practice"]) if x)
        footer = f"Confidential: {values['patient_name']}, {values['mrn']}"
    else:
        to = values["patient_name"]
        footer = f"{values['patient_name']}, {values['mrn']}"
    page = _ENV.from_string(_PAGE).render(
        subject=subject,
        # The administrator's sandboxed template, its values escaped as it was rendered
        # (autoescape): markup an administrator wrote, around escaped values.
        body=Markup(body),  # noqa: S704  # nosec B704
        to=to,
        footer=footer,
        **{k: values[k] for k in ("hospital", "team", "today", "mrn")},
    )
    return subject, page


def pdf_of(page: str) -> bytes:
    """The letter's page as a PDF. It loads nothing from outside the page (a fetcher that
    allows no protocol): no file of the server, no address of the network, which an
    administrator's template naming one would otherwise have read into the PDF. Fonts are
    the system's, found without fetching."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    return HTML(string=page, url_fetcher=URLFetcher(allowed_protocols=())).write_pdf()


def generate(case: MdtCase, kind: str, actor, now: datetime) -> GeneratedDocument:
    """The ``kind`` letter of ``case``'s outcome as a PDF, stored as a new document."""
    if getattr(actor, "role", None) not in MAY_GENERATE:
        raise RoleNotAllowed("Outcome letters are generated by care coordinators and surgeons.")
    if kind not in LETTER_KINDS:
        raise InvalidData({"kind": [f"Unknown letter '{kind}': one of {', '.join(LETTER_KINDS)}"]})
    history = engine.load_history(case.pathway)
    outcome = _outcome(case, history)
    if outcome is None:
        raise InvalidData(
            {"kind": ["No MDT outcome is recorded for this case yet: record it, then the letter"]}
        )
    today = now.astimezone(local_zone()).date()
    values = values_for(case, outcome, actor, today)
    _subject, page = render_letter(kind, values)
    content = pdf_of(page)
    document = GeneratedDocument(
        pathway=case.pathway,
        case_id=case.id,
        meeting_id=case.meeting_id,
        kind=kind,
        filename=f"mdt-{kind}-letter-{case.pathway.patient.mrn}-{case.meeting.meeting_date}.pdf",
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        generated_by_id=actor.id,
        generated_at=now,
    )
    db_session().add(document)
    db_session().flush()
    return document
