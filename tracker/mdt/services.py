"""MDT meetings: creating and editing them, recurring series, listing a pathway on one
and the list's order. Flush, never commit (tracker.web.boundary commits)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from tracker.audit import services as audit
from tracker.core.clock import format_local, local_zone
from tracker.core.runtime import db_session, setting
from tracker.engine import services as engine
from tracker.engine import steps as d
from tracker.engine import tags, teams
from tracker.engine.dictionary import DISCIPLINES
from tracker.engine.errors import InvalidData, RoleNotAllowed
from tracker.engine.fields import blank
from tracker.engine.history import History, apply_changes
from tracker.engine.models import Event, Pathway
from tracker.mdt.models import MEETING_STATUSES, TRIAGE, MdtAttendance, MdtCase, MdtMeeting
from tracker.users.models import User, user_named
from tracker.web.access import MDT_ORGANISERS

LISTING = d.MDT_LISTING_TRIGGER
MAY_ORGANISE = MDT_ORGANISERS
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_WEEKS = 52
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)  # meetings the clocks can hold


def check_organiser(actor) -> None:
    if getattr(actor, "role", None) not in MAY_ORGANISE:
        raise RoleNotAllowed("MDT meetings are created and changed by care coordinators.")


def starts_at(meeting: MdtMeeting) -> datetime:
    """The meeting's start, an aware time (date and time are the hospital's local ones)."""
    return datetime.combine(meeting.meeting_date, meeting.start_time, tzinfo=local_zone())


def closes_at(meeting: MdtMeeting) -> datetime:
    """When the list closes for additions without a reason (MDT_LIST_CLOSES_HOURS)."""
    hours = float(setting("MDT_LIST_CLOSES_HOURS", 24))
    return starts_at(meeting) - timedelta(hours=hours)


# -- meetings -------------------------------------------------------------------------------


@dataclass
class MeetingData:
    team: str
    meeting_date: date
    start_time: time
    location: str
    video_link: str
    chair: User | None
    status: str


def _check_meeting(values: dict[str, Any], meeting: MdtMeeting | None) -> MeetingData:
    """Every problem with a meeting's values at once (InvalidData), or the values."""
    errors: dict[str, list[str]] = {}

    def need(name: str, message: str) -> Any:
        value = values.get(name)
        if blank(value):
            errors[name] = [message]
            return None
        return value

    team = need("team", f"Choose the team: {', '.join(teams.codes())}")
    if team is not None and team not in teams.codes():
        errors["team"] = [f"Unknown team '{team}': choose one of {', '.join(teams.codes())}"]
    day = need("meeting_date", "Give the meeting's date (YYYY-MM-DD)")
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            errors["meeting_date"] = ["Give the meeting's date as YYYY-MM-DD"]
    if isinstance(day, date) and not FIRST_DAY <= day <= LAST_DAY:
        errors["meeting_date"] = [f"Give a date from {FIRST_DAY.year} to {LAST_DAY.year}"]
    at = need("start_time", "Give the start time (HH:MM)")
    if isinstance(at, str):
        try:
            at = time.fromisoformat(at)
        except ValueError:
            errors["start_time"] = ["Give the start time as HH:MM, e.g. 08:00"]
    location = (values.get("location") or "").strip()
    video_link = (values.get("video_link") or "").strip()
    if not location and not video_link:
        errors["location"] = ["Give a location, a video link, or both"]
    if len(location) > 200:
        errors["location"] = ["The location is too long: at most 200 characters"]
    if video_link and not video_link.startswith("https://"):
        errors["video_link"] = ["A video link starts with https://"]
    if len(video_link) > 500:
        errors["video_link"] = ["The video link is too long: at most 500 characters"]
    chair = None
    username = values.get("chair")
    if not blank(username):
        chair = user_named(username)
        if chair is None or not chair.active:
            errors["chair"] = [f"Chair: no active user is called '{username}'"]
    else:
        errors["chair"] = ["Choose who chairs the meeting"]
    status = values.get("status") or (meeting.status if meeting else "scheduled")
    if status not in MEETING_STATUSES:
        errors["status"] = [f"Unknown status '{status}': one of {', '.join(MEETING_STATUSES)}"]
    if not errors and isinstance(day, date) and isinstance(at, time):
        clash = db_session().scalar(
            select(MdtMeeting).where(
                MdtMeeting.team == team,
                MdtMeeting.meeting_date == day,
                MdtMeeting.start_time == at,
                MdtMeeting.id != (meeting.id if meeting and meeting.id else -1),
            )
        )
        if clash is not None:
            errors["meeting_date"] = [
                f"{teams.label(team)} already meets on {day.isoformat()} at {at:%H:%M}"
            ]
    if errors:
        raise InvalidData(errors)
    return MeetingData(team, day, at, location, video_link, chair, status)


def create_meeting(values: dict[str, Any], actor) -> MdtMeeting:
    check_organiser(actor)
    data = _check_meeting(values, None)
    meeting = MdtMeeting(
        team=data.team,
        meeting_date=data.meeting_date,
        start_time=data.start_time,
        location=data.location,
        video_link=data.video_link,
        chair=data.chair,
        status=data.status,
        created_by_id=actor.id,
    )
    db_session().add(meeting)
    db_session().flush()
    return meeting


def update_meeting(meeting: MdtMeeting, values: dict[str, Any], actor) -> bool:
    """Change a meeting; False when nothing changed. Its team stays once cases are
    listed, and a meeting with cases keeps its date (the cases' steps name it)."""
    check_organiser(actor)
    data = _check_meeting(values, meeting)
    errors = {}
    if meeting.cases and data.team != meeting.team:
        errors["team"] = ["Cases are listed on this meeting: its team cannot change"]
    if meeting.cases and data.meeting_date != meeting.meeting_date:
        errors["meeting_date"] = [
            "Cases are listed on this meeting: its date cannot change (create another "
            "meeting, or cancel this one)"
        ]
    if errors:
        raise InvalidData(errors)
    changed = False
    for name in ("team", "meeting_date", "start_time", "location", "video_link", "status"):
        if getattr(meeting, name) != getattr(data, name):
            setattr(meeting, name, getattr(data, name))
            changed = True
    if meeting.chair_id != (data.chair.id if data.chair else None):
        meeting.chair = data.chair
        changed = True
    db_session().flush()
    return changed


def create_series(
    values: dict[str, Any], weekday: str, weeks: int, actor, today: date
) -> tuple[list[MdtMeeting], int]:
    """Weekly meetings from a template (team, time, place, chair) on ``weekday`` for the
    next ``weeks`` weeks from ``today``: (the meetings created, how many existed already).
    Idempotent: a slot the team already has is skipped, so running it again adds only
    the weeks not yet created."""
    check_organiser(actor)
    errors = {}
    if weekday not in WEEKDAYS:
        errors["weekday"] = [f"Choose a day of the week: {', '.join(WEEKDAYS)}"]
    if not isinstance(weeks, int) or not 1 <= weeks <= MAX_WEEKS:
        errors["weeks"] = [f"Give a number of weeks from 1 to {MAX_WEEKS}"]
    try:
        _check_meeting({**values, "meeting_date": today.isoformat()}, None)
    except InvalidData as exc:
        errors.update({k: v for k, v in exc.errors.items() if k != "meeting_date"})
    if errors:
        raise InvalidData(errors)
    first = today + timedelta(days=(WEEKDAYS.index(weekday) - today.weekday()) % 7)
    created, existing = [], 0
    for week in range(weeks):
        day = first + timedelta(weeks=week)
        try:
            created.append(create_meeting({**values, "meeting_date": day.isoformat()}, actor))
        except InvalidData as exc:
            if "meeting_date" in exc.errors and len(exc.errors) == 1:
                existing += 1  # that slot exists: idempotent
                continue
            raise
    return created, existing


# -- the case list --------------------------------------------------------------------------


# The words for a listing's own fields left blank (a new listing and a correction).
_LISTING_NEEDS = (
    ("question", "Give the clinical question for the meeting"),
    ("presenter", "Choose who presents the case"),
    ("triage", f"Choose the triage: {', '.join(TRIAGE)}"),
)


def _listing_check(pathway: Pathway, data, now: datetime):
    """``schedule_mdt`` naming a meeting: the meeting's date is the date; the meeting must
    be of the pathway's team, scheduled and still ahead; a case once per meeting; a
    question, a presenter and a triage; a reason once the list has closed."""
    data = dict(data or {})
    errors: dict[str, list[str]] = {}
    meeting_id = data.get("meeting_id")
    extras = [n for n in ("question", "presenter", "triage", "late_reason") if n in data]
    if blank(meeting_id):
        data.pop("meeting_id", None)
        for name in extras:
            errors[name] = ["Name the meeting (meeting_id) this belongs to"]
        return data, errors
    if isinstance(meeting_id, bool) or not isinstance(meeting_id, int):
        return data, {"meeting_id": ["MDT meeting must be a meeting's number"]}
    # An id the database cannot hold names no meeting (and must not reach the query).
    meeting = db_session().get(MdtMeeting, meeting_id) if 0 < meeting_id < 2**31 else None
    if meeting is None:
        return data, {"meeting_id": [f"There is no MDT meeting {meeting_id}"]}
    day = meeting.meeting_date.isoformat()
    if not blank(data.get("meeting_date")) and str(data["meeting_date"]) != day:
        errors["meeting_date"] = [f"The meeting is on {day}: leave the date out, or give that date"]
    data["meeting_date"] = day
    if meeting.team != pathway.team:
        errors["meeting_id"] = [
            f"This pathway is cared for by {teams.label(pathway.team)}; list it on a "
            f"meeting of that team (this one is {teams.label(meeting.team)}'s)"
        ]
    elif meeting.status != "scheduled":
        errors["meeting_id"] = [f"That meeting is {meeting.status}: choose another"]
    elif starts_at(meeting) <= now:
        errors["meeting_id"] = [
            f"That meeting started at {format_local(starts_at(meeting))}: choose one ahead"
        ]
    elif pathway.id is not None and db_session().scalar(
        select(MdtCase.id).where(MdtCase.meeting_id == meeting.id, MdtCase.pathway_id == pathway.id)
    ):
        errors["meeting_id"] = ["This pathway is already listed on that meeting"]
    for name, message in _LISTING_NEEDS:
        if blank(data.get(name)):
            errors[name] = [message]
    if "meeting_id" not in errors and now >= closes_at(meeting) and blank(data.get("late_reason")):
        errors["late_reason"] = [
            f"The list closed at {format_local(closes_at(meeting))}: give the reason for "
            "this late addition"
        ]
    if now < closes_at(meeting):
        data.pop("late_reason", None)  # on time: no reason to keep
    return data, errors


def _end_of_list(meeting_id: int) -> int:
    """The position of a case added to the end of a meeting's list."""
    last = db_session().scalar(
        select(func.max(MdtCase.position)).where(MdtCase.meeting_id == meeting_id)
    )
    return (last or 0) + 1


def _listing_follow_up(pathway: Pathway, event: Event, clean: dict, now: datetime) -> None:
    if "meeting_id" not in clean:
        return
    session = db_session()
    session.add(
        MdtCase(
            meeting_id=clean["meeting_id"],
            pathway=pathway,
            event=event,
            position=_end_of_list(clean["meeting_id"]),
            question=clean["question"],
            presenter=user_named(clean["presenter"]),
            triage=clean["triage"],
            late_reason=clean.get("late_reason", ""),
            listed_at=now,
        )
    )
    session.flush()


def _listing_correction_check(pathway: Pathway, data: dict, changes: dict, now: datetime):
    """A correction of a listing on a meeting, which the case on that meeting follows: the
    question, presenter and triage stay given; a new meeting is held to the rules of a new
    listing (of the pathway's team, scheduled, ahead, the case once on it, a reason once
    its list has closed) and its date becomes the step's; a case does not leave a meeting
    that has started (list the pathway again instead)."""
    if blank(data.get("meeting_id")):
        if not blank(changes.get("meeting_id")):
            return changes, {
                "meeting_id": [
                    "This listing names a date, not a meeting: list the pathway on the "
                    "meeting instead of correcting the listing"
                ]
            }
        return changes, {}
    errors = {
        name: [message]
        for name, message in _LISTING_NEEDS
        if name in changes and blank(changes[name])
    }
    if "meeting_id" not in changes:
        return changes, errors
    if blank(changes["meeting_id"]):
        errors["meeting_id"] = ["A case listed on a meeting stays on one: choose its meeting"]
        return changes, errors
    current = db_session().get(MdtMeeting, data["meeting_id"])
    if current is not None and starts_at(current) <= now:
        errors["meeting_id"] = [
            f"The meeting of {format_local(starts_at(current))} has started: its cases stay "
            "on it; list the pathway again on another meeting"
        ]
        return changes, errors
    corrected = {k: v for k, v in {**data, **changes}.items() if v is not None}
    corrected.pop("meeting_date", None)  # the new meeting's date, from the check
    clean, found = _listing_check(pathway, corrected, now)
    errors.update(found)
    if clean.get("meeting_date") not in (None, data.get("meeting_date")):
        changes = {**changes, "meeting_date": clean["meeting_date"]}
    return changes, errors


def _listing_corrected(pathway: Pathway, event: Event, changes: dict, now: datetime) -> None:
    """The case on the meeting follows a correction of its listing step."""
    session = db_session()
    case = session.scalar(select(MdtCase).where(MdtCase.event_id == event.id))
    if case is None:  # a listing by date alone
        return
    meeting_id = changes.get("meeting_id")
    if meeting_id is not None and meeting_id != case.meeting_id:
        case.meeting_id, case.position = meeting_id, _end_of_list(meeting_id)
    for name in ("question", "triage"):
        if changes.get(name) is not None:
            setattr(case, name, changes[name])
    if "late_reason" in changes:
        case.late_reason = changes["late_reason"] or ""
    if changes.get("presenter") is not None:
        case.presenter = user_named(changes["presenter"])
    session.flush()  # audited as the case's change (mdt_case_moved)


engine.extend(
    LISTING,
    check=_listing_check,
    follow_up=_listing_follow_up,
    correction_check=_listing_correction_check,
    corrected=_listing_corrected,
)


def _outcome_check(pathway: Pathway, data, now: datetime):
    """An MDT outcome naming a meeting: the pathway is listed on it (an outcome for a case
    not listed is refused), the meeting was not cancelled, and its date is the date."""
    data = dict(data or {})
    meeting_id = data.get("meeting_id")
    if blank(meeting_id):
        data.pop("meeting_id", None)
        return data, {}
    if isinstance(meeting_id, bool) or not isinstance(meeting_id, int):
        return data, {"meeting_id": ["MDT meeting must be a meeting's number"]}
    meeting = db_session().get(MdtMeeting, meeting_id) if 0 < meeting_id < 2**31 else None
    if meeting is None:
        return data, {"meeting_id": [f"There is no MDT meeting {meeting_id}"]}
    day = meeting.meeting_date.isoformat()
    listed = pathway.id is not None and db_session().scalar(
        select(MdtCase.id).where(MdtCase.meeting_id == meeting.id, MdtCase.pathway_id == pathway.id)
    )
    if not listed:
        return data, {
            "meeting_id": [
                f"This pathway is not listed on the {teams.label(meeting.team)} MDT of {day}: "
                "list it on that meeting first, or record the outcome without naming a meeting"
            ]
        }
    if meeting.status == "cancelled":
        return data, {"meeting_id": [f"The MDT of {day} was cancelled: it decided nothing"]}
    if blank(data.get("meeting_date")):
        data["meeting_date"] = day
    elif str(data["meeting_date"]) != day:
        return data, {
            "meeting_date": [f"The meeting named was on {day}: give that date, or leave it out"]
        }
    return data, {}


for _trigger, _words in d.mdt_outcome_choices():
    engine.extend(_trigger, check=_outcome_check)


def move_case(case: MdtCase, direction: str, actor) -> bool:
    """Swap a case with its neighbour above ("up") or below ("down"); False at the end."""
    check_organiser(actor)
    if direction not in ("up", "down"):
        raise InvalidData({"direction": ["Move a case up or down"]})
    cases = list(case.meeting.cases)
    index = cases.index(case)
    other = index - 1 if direction == "up" else index + 1
    if not 0 <= other < len(cases):
        return False
    neighbour = cases[other]
    case.position, neighbour.position = neighbour.position, case.position
    db_session().flush()
    return True


def outcome_recorded(case: MdtCase, history: History) -> bool:
    """Whether an MDT outcome was recorded on the pathway after the case was listed."""
    return history.latest_tagged(tags.MDT_OUTCOME, since=case.event.seq) is not None


# -- attendance and quoracy -----------------------------------------------------------------

SPECIALTIES = dict(DISCIPLINES)
DEFAULT_CORE = ("spinal_surgery", "clinical_oncology", "radiology", "pathology")


def core_specialties(team: str) -> tuple[str, ...]:
    """The specialties ``team``'s meeting needs present (MDT_CORE_SPECIALTIES; a team not
    named there needs the spine team's default)."""
    raw = setting("MDT_CORE_SPECIALTIES", "") or ""
    for item in raw.split(";"):
        code, _, specialties = item.partition("=")
        if code.strip() == team:
            return tuple(s.strip() for s in specialties.split("+") if s.strip())
    return DEFAULT_CORE


@dataclass
class Quorum:
    quorate: bool
    needed: tuple[str, ...]
    missing: tuple[str, ...]


def quorum(meeting: MdtMeeting) -> Quorum:
    present = {a.specialty for a in meeting.attendance}
    needed = core_specialties(meeting.team)
    missing = tuple(s for s in needed if s not in present)
    return Quorum(not missing, needed, missing)


def record_attendance(meeting: MdtMeeting, username: str, specialty: str, actor) -> MdtAttendance:
    """``username`` attended ``meeting`` as ``specialty``; once per person per meeting."""
    check_organiser(actor)
    errors: dict[str, list[str]] = {}
    user = None
    if blank(username):
        errors["user"] = ["Choose who attended"]
    else:
        user = user_named(username)
        if user is None:
            errors["user"] = [f"No user is called '{username}'"]
    if specialty not in SPECIALTIES:
        errors["specialty"] = [
            f"Unknown specialty '{specialty}': choose one of {', '.join(SPECIALTIES)}"
        ]
    if meeting.status == "cancelled":
        errors["user"] = ["The meeting was cancelled: nobody attended it"]
    if user is not None and any(a.user_id == user.id for a in meeting.attendance):
        errors["user"] = [f"{user.full_name or user.username} is already on the attendance"]
    if errors:
        raise InvalidData(errors)
    attended = MdtAttendance(meeting=meeting, user=user, specialty=specialty)
    db_session().add(attended)
    db_session().flush()
    return attended


# -- verify ---------------------------------------------------------------------------------


def case_problems() -> list[str]:
    """Each listed case whose row disagrees with the pathway's listing step (the step is
    the record: it is chained; the row is the meeting's copy of it, with the order)."""
    problems = []
    rows = (
        db_session()
        .execute(
            select(MdtCase, Event).join(Event, Event.id == MdtCase.event_id).order_by(MdtCase.id)
        )
        .all()
    )
    # The listing as corrected: its amendments' changes applied in order.
    corrections: dict[int, list[dict]] = {}
    for target_id, amendment in db_session().execute(
        select(Event.amends_event_id, Event.data)
        .join(MdtCase, MdtCase.event_id == Event.amends_event_id)
        .order_by(Event.pathway_id, Event.seq)
    ):
        corrections.setdefault(target_id, []).append((amendment or {}).get("changes", {}))
    for case, event in rows:
        data = event.data or {}
        for changes in corrections.get(event.id, ()):
            data = apply_changes(data, changes)
        wrong = []
        if event.trigger != LISTING or event.pathway_id != case.pathway_id:
            wrong.append(f"its step is not the listing of pathway {case.pathway_id}")
        if data.get("meeting_id") != case.meeting_id:
            wrong.append(f"the step names meeting {data.get('meeting_id')}")
        for name in ("question", "triage"):
            if data.get(name) != getattr(case, name):
                wrong.append(f"its {name} differs from the step's")
        if wrong:
            problems.append(f"MDT case {case.id} (meeting {case.meeting_id}): " + "; ".join(wrong))
    return problems


# -- after the meeting ----------------------------------------------------------------------


def next_meeting(meeting: MdtMeeting, now: datetime) -> MdtMeeting | None:
    """The team's next scheduled meeting after ``meeting`` that has not started."""
    found = db_session().scalars(
        select(MdtMeeting)
        .where(
            MdtMeeting.team == meeting.team,
            MdtMeeting.status == "scheduled",
            MdtMeeting.id != meeting.id,
            MdtMeeting.meeting_date >= meeting.meeting_date,
        )
        .order_by(MdtMeeting.meeting_date, MdtMeeting.start_time, MdtMeeting.id)
    )
    return next((m for m in found if starts_at(m) > max(now, starts_at(meeting))), None)


def not_reached(meeting: MdtMeeting) -> list[tuple[MdtCase, History]]:
    """The meeting's cases with no outcome recorded since their listing, not rolled over
    already, whose pathway still waits in MDT review (a pathway closed since needs none)."""
    out = []
    for case in meeting.cases:
        if case.rolled_to_id is not None or case.pathway.state != "mdt_review":
            continue
        history = engine.load_history(case.pathway)
        listing = next((s for s in history.steps if s.seq == case.event.seq), None)
        if listing is None or listing.voided_by is not None:
            continue
        if not outcome_recorded(case, history):
            out.append((case, history))
    return out


def roll_over(meeting: MdtMeeting, actor, now: datetime) -> tuple[list[MdtCase], MdtMeeting]:
    """List every case not reached at ``meeting`` on the team's next meeting, with the
    same question, presenter and triage: all of them, or none (InvalidData names why).
    Each is a new listing step of its pathway; the old case row names where it went."""
    check_organiser(actor)
    if starts_at(meeting) > now:
        raise InvalidData(
            {"meeting": ["This meeting has not started: cases not reached roll over after it"]}
        )
    cases = not_reached(meeting)
    if not cases:
        raise InvalidData(
            {"meeting": ["Every case has an outcome or was rolled over: nothing to roll over"]}
        )
    target = next_meeting(meeting, now)
    if target is None:
        raise InvalidData(
            {
                "meeting": [
                    f"{teams.label(meeting.team)} has no later meeting scheduled: create the "
                    "next meeting, then roll the cases over"
                ]
            }
        )
    reason = f"Not reached at the MDT of {meeting.meeting_date.isoformat()}: rolled over"
    moved = []
    for case, _history in cases:
        data = {
            "meeting_id": target.id,
            "question": case.question,
            "presenter": case.presenter.username,
            "triage": case.triage,
            "late_reason": reason,
        }
        try:
            engine.record(
                case.pathway,
                LISTING,
                data,
                now,
                actor,
                case.pathway.version,
                engine.new_request_id(),
                now=now,
            )
        except InvalidData as exc:
            words = "; ".join(m for ms in exc.errors.values() for m in ms)
            raise InvalidData(
                {"meeting": [f"{case.pathway.patient.name} could not be rolled over: {words}"]}
            ) from exc
        case.rolled_to_id = target.id
        moved.append(case)
    db_session().flush()
    audit.record(
        "mdt_cases_rolled_over",
        user=actor,
        detail={
            "from_meeting": meeting.id,
            "to_meeting": target.id,
            "cases": [c.id for c in moved],
        },
    )
    return moved, target
