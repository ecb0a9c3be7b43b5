"""Who may call what: one role x endpoint (x trigger) matrix, kept as data.

Every endpoint of the app is listed here; one missing is refused to everyone (and a
test fails). ``tracker.web`` checks the matrix before every page and ``tracker.api``
before every call; the pathway services check each trigger's roles again.

``shows`` marks endpoints that show patient data: each successful view is written to
the audit log, and the response is never stored by a browser or proxy.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracker.engine import steps as d
from tracker.engine import tags
from tracker.users.roles import CLINICAL, ROLE_LABELS, ROLES, a_role

ANONYMOUS = "anonymous"
# Half logged in: the password was right, the second factor is still to come. Such a
# session reaches the second-factor pages, logout and the static files, nothing else.
PENDING = "second_factor"
EVERYONE = frozenset(ROLES)
PUBLIC = EVERYONE | {ANONYMOUS}
ASSETS = PUBLIC | {PENDING}
HALFWAY = frozenset({PENDING})
CLINICAL = CLINICAL
ADMIN = frozenset({"admin"})
# Whoever may fire at least one trigger; the trigger itself decides the rest.
ANY_TRIGGER = frozenset().union(*d.trigger_roles().values())
# Whoever may record an MDT outcome (the one MDT form records all of them).
# Who creates and changes MDT meetings and orders their lists.
MDT_ORGANISERS = frozenset({"coordinator"})
MDT_DECISION = frozenset().union(*(d.roles_for(t) for t, _ in d.mdt_outcome_choices()))
# Whoever may take a bulk action: hand pathways over, or list them on an MDT meeting (each
# action checks its own step's roles again).
BULK = frozenset().union(
    *(d.roles_for(t) for t in (*d.tagged(tags.HANDOVER), d.MDT_LISTING_TRIGGER))
)


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    # What the endpoint shows of patients: "patient" / "pathway" (one record, by the id
    # in the URL), "list" (several), "export" (a download). None: no patient data.
    shows: str | None = None
    # Where the trigger comes from when the roles depend on it: "url" (view argument
    # ``trigger``) or "body" (the JSON body; checked by the services, answering 403).
    trigger: str | None = None


ACCESS: dict[str, Rule] = {
    # No login.
    "static": Rule(ASSETS),
    "bootstrap.static": Rule(ASSETS),
    "healthz": Rule(ASSETS),
    "auth.login": Rule(PUBLIC),
    # A one-time password reset link (the token in the URL is the credential).
    "auth.reset_password": Rule(PUBLIC),
    "sso.start": Rule(PUBLIC),  # single sign-on: to the identity provider and back
    "sso.callback": Rule(PUBLIC),
    "api.openapi": Rule(PUBLIC),
    # Between the password and the second factor.
    "auth.second_factor": Rule(HALFWAY),
    "auth.enrol": Rule(HALFWAY),  # a role that requires a second factor, not set up yet
    # Every account.
    "auth.logout": Rule(EVERYONE | HALFWAY),
    "account.two_factor": Rule(EVERYONE),
    "account.recovery_codes": Rule(EVERYONE),
    "account.index": Rule(EVERYONE),
    "account.create_token": Rule(EVERYONE),
    "account.revoke_token": Rule(EVERYONE),  # own tokens; administrators: anyone's
    "account.change_password": Rule(EVERYONE),
    "account.end_other_sessions": Rule(EVERYONE),
    "account.alerts": Rule(EVERYONE),  # one's own email address and digest preference
    # One's own notifications (MRN and name of the patients alerted about).
    "notifications.index": Rule(EVERYONE, shows="list"),
    "notifications.mark_read": Rule(EVERYONE),
    "notifications.mark_all_read": Rule(EVERYONE),
    "worklist.index": Rule(EVERYONE, shows="list"),
    "worklist.export": Rule(EVERYONE, shows="export"),
    "patients.index": Rule(EVERYONE, shows="list"),
    "patients.show": Rule(EVERYONE, shows="patient"),
    "pathway.show": Rule(EVERYONE, shows="pathway"),
    "pathway.print_view": Rule(EVERYONE, shows="pathway"),
    "mdt.index": Rule(EVERYONE, shows="list"),
    # MDT meetings: the list and calendar show no patient; a meeting shows its cases.
    "mdt.meetings": Rule(EVERYONE),
    "mdt.calendar": Rule(EVERYONE),
    "mdt.meeting": Rule(EVERYONE, shows="list"),
    "review.index": Rule(EVERYONE, shows="list"),
    "mywork.index": Rule(CLINICAL, shows="list"),
    "reports.index": Rule(EVERYONE),
    "reports.table_csv": Rule(EVERYONE),
    "reports.this_week": Rule(EVERYONE, shows="list"),
    "returns.ptl": Rule(EVERYONE, shows="list"),
    "returns.ptl_csv": Rule(EVERYONE, shows="export"),
    "returns.cwt": Rule(EVERYONE, shows="list"),
    "returns.cwt_csv": Rule(EVERYONE, shows="export"),
    # Saved views: filters under a name, one's own or shared; no patient data in them.
    "views.index": Rule(EVERYONE),
    "views.save": Rule(EVERYONE),
    "views.open_view": Rule(EVERYONE),
    "views.edit": Rule(EVERYONE),  # one's own views
    "views.delete": Rule(EVERYONE),  # one's own; an administrator: a shared one
    # Clinical work.
    "patients.register": Rule(CLINICAL),
    "patients.edit": Rule(CLINICAL, shows="patient"),
    "patients.open_pathway": Rule(CLINICAL, shows="patient"),
    "pathway.record": Rule(ANY_TRIGGER, shows="pathway", trigger="url"),
    "pathway.mdt_outcome": Rule(MDT_DECISION, shows="pathway"),
    "pathway.amend": Rule(d.roles_for(d.AMEND_TRIGGER), shows="pathway"),
    "pathway.void": Rule(d.roles_for(d.VOID_TRIGGER), shows="pathway"),
    # MDT meetings are organised by care coordinators; a pathway is listed on one by
    # whoever records its listing step.
    "mdt.new_meeting": Rule(MDT_ORGANISERS),
    "mdt.new_series": Rule(MDT_ORGANISERS),
    "mdt.edit_meeting": Rule(MDT_ORGANISERS),
    "mdt.move_case": Rule(MDT_ORGANISERS),
    "mdt.add_attendance": Rule(MDT_ORGANISERS),
    "mdt.list_case": Rule(d.roles_for(d.MDT_LISTING_TRIGGER), shows="pathway"),
    "mdt.roll_over": Rule(MDT_ORGANISERS),
    "mdt.send_list": Rule(MDT_ORGANISERS),
    # Running a meeting: its agenda is read by all; live mode records the outcomes.
    "mdt.agenda_print": Rule(EVERYONE, shows="list"),
    "mdt.live": Rule(CLINICAL),
    "mdt.live_case": Rule(CLINICAL, shows="pathway"),
    # Outcome letters: generated by clinical staff, downloaded by whoever sees the pathway.
    "mdt.generate_letter": Rule(CLINICAL, shows="pathway"),
    "mdt.document": Rule(EVERYONE, shows="pathway"),
    # A step recorded on each of several pathways ticked on a list (GET: what it will do).
    "bulk.act": Rule(BULK, shows="list"),
    # Administration.
    "users.index": Rule(ADMIN),
    "users.create": Rule(ADMIN),
    "users.edit": Rule(ADMIN),
    "users.unlock": Rule(ADMIN),
    "users.reset_link": Rule(ADMIN),
    "users.reset_two_factor": Rule(ADMIN),
    "audit.index": Rule(ADMIN, shows="list"),
    "audit.export": Rule(ADMIN, shows="export"),
    "teams.report": Rule(ADMIN, shows="list"),
    "mdt.letter_templates": Rule(ADMIN),
    "mdt.edit_letter_template": Rule(ADMIN),
    # Break-glass: anyone who reads records may open another team's, with a reason.
    "teams.emergency_access": Rule(EVERYONE),
    # The API: the same permissions as the pages (a token acts as its user).
    "api.definition": Rule(EVERYONE),
    "api.create_patient": Rule(CLINICAL),
    "api.get_patient": Rule(EVERYONE, shows="patient"),
    "api.update_patient": Rule(CLINICAL),
    "api.create_pathway": Rule(CLINICAL),
    "api.list_pathways": Rule(EVERYONE, shows="list"),
    "api.get_pathway": Rule(EVERYONE, shows="pathway"),
    "api.list_events": Rule(EVERYONE, shows="pathway"),
    "api.record_event": Rule(ANY_TRIGGER, trigger="body"),
    "api.fhir": Rule(EVERYONE, shows="export"),
    "api.list_tasks": Rule(EVERYONE, shows="pathway"),
    "api.create_task": Rule(d.roles_for(d.ADD_TASK_TRIGGER)),
    "api.change_task": Rule(
        d.roles_for(d.COMPLETE_TASK_TRIGGER)
        | d.roles_for(d.CANCEL_TASK_TRIGGER)
        | d.roles_for(d.UPDATE_TASK_TRIGGER)
    ),
    "api.ptl": Rule(EVERYONE, shows="list"),
    "api.cwt_return": Rule(EVERYONE, shows="export"),
    # MDT meetings: a meeting shows its cases (of the caller's teams); organisers create
    # them; whoever may record the listing step lists a pathway on one.
    "api.list_mdt_meetings": Rule(EVERYONE),
    "api.get_mdt_meeting": Rule(EVERYONE, shows="list"),
    "api.create_mdt_meeting": Rule(MDT_ORGANISERS),
    "api.list_mdt_case": Rule(d.roles_for(d.MDT_LISTING_TRIGGER)),
}

NOBODY = Rule(frozenset())


def rule_for(endpoint: str | None) -> Rule:
    return ACCESS.get(endpoint or "", NOBODY)


def refusal(role: str | None, endpoint: str | None, view_args: dict | None = None) -> str | None:
    """Why ``role`` (None: not logged in) may not call ``endpoint``; None when it may."""
    who = role or ANONYMOUS
    rule = rule_for(endpoint)
    if who not in rule.roles:
        if who == ANONYMOUS:
            return "Log in first."
        if who == PENDING:
            return "Finish logging in first: enter the code from your authenticator app."
        if rule.roles == HALFWAY:
            return "You are logged in already; this page is for the second step of a login."
        return f"{a_role(who)} may not use this page."
    if rule.trigger == "url" and view_args and view_args.get("trigger") in d.trigger_roles():
        trigger = view_args["trigger"]
        if not d.role_may(who, trigger):
            roles = ", ".join(sorted(ROLE_LABELS[r].lower() for r in d.roles_for(trigger)))
            return f"'{d.label(trigger)}' is recorded by: {roles}."
    return None


def allowed(role: str | None, endpoint: str, trigger: str | None = None) -> bool:
    """The matrix as a predicate (the tests walk it); a trigger applies where it counts."""
    rule = rule_for(endpoint)
    if (role or ANONYMOUS) not in rule.roles:
        return False
    if trigger is not None and rule.trigger is not None:
        return d.role_may(role, trigger)
    return True
