"""Random sequences of steps, good and bad, through the services (hypothesis).

Steps are recorded on time or late (dated before steps recorded earlier), their times and
the referral are corrected, steps are voided. After every step: the state equals the
replay of the events, seq is contiguous, the version went up by exactly one per accepted
event, a refusal wrote nothing, and the pathway row, its clock and fact rows agree with a
full derivation from the events (what `flask tracker verify` checks).
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select
from sqlalchemy.orm import scoped_session, sessionmaker

from tests.helpers import make_users, new_pathway, valid_data
from tracker.engine import derive, services, timing
from tracker.engine import steps as d
from tracker.engine.errors import PathwayError
from tracker.engine.history import History
from tracker.engine.machine import expected_destination
from tracker.engine.models import Event
from tracker.extensions import db

GARBAGE = {
    "modality": "sonar",
    "meeting_date": "yesterday",
    "disciplines": "all",
    "reason": 7,
    "note": "\x00",
    "sins": {"location": 9},
}


ACCEPTED: Counter[str] = Counter()  # accepted changes per rule, across the run


def run_machine(app):
    class PathwayMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.ctx = app.app_context()
            self.ctx.push()
            self.connection = db.engine.connect()
            self.outer = self.connection.begin()
            self.original = db.session
            db.session = scoped_session(
                sessionmaker(bind=self.connection, join_transaction_mode="create_savepoint")
            )
            self.users = make_users()
            self.t = datetime.now(UTC) - timedelta(days=2000)
            self.pathway = new_pathway(self.users["coordinator"], self.t)
            self.version = 1
            self.events = 1
            self.accepted: list[tuple[str, str]] = []  # (request_id, trigger)

        def teardown(self):
            db.session.remove()
            db.session = self.original
            self.outer.rollback()
            self.connection.close()
            self.ctx.pop()

        def attempt(self, call, kind: str = "") -> bool:
            savepoint = db.session.begin_nested()
            try:
                result = call()
            except PathwayError:
                savepoint.rollback()
                db.session.refresh(self.pathway)
                return False
            savepoint.commit()
            if result.created:
                self.version += 1
                self.events += 1
                ACCEPTED[kind] += 1
            return result.created

        def when(self):
            self.t += timedelta(hours=1)
            return self.t

        @rule(
            trigger=st.sampled_from(d.recordable()),
            kind=st.sampled_from(["valid", "valid", "empty", "garbage"]),
            stale=st.integers(min_value=0, max_value=4).map(lambda n: n == 0),
            reuse=st.integers(min_value=0, max_value=5).map(lambda n: n == 0),
            actor=st.sampled_from(["coordinator", "coordinator", "surgeon", "viewer"]),
        )
        def record(self, trigger, kind, stale, reuse, actor):
            at = self.when()
            source = self.pathway.state
            data = {"valid": valid_data(trigger, source, at), "empty": {}, "garbage": GARBAGE}[kind]
            request_id = uuid.uuid4().hex
            if reuse and self.accepted:
                request_id, trigger = self.accepted[-1]
            expected = self.pathway.version - (1 if stale else 0)
            created = self.attempt(
                lambda: services.record(
                    self.pathway, trigger, data, at, self.users[actor], expected, request_id
                )
            )
            if created:
                assert not stale and kind != "garbage"
                assert d.role_may(self.users[actor].role, trigger)
                assert self.pathway.state == expected_destination(trigger, source)
                self.accepted.append((request_id, trigger))

        @rule(
            pick=st.integers(min_value=0, max_value=10**6),
            minutes=st.integers(min_value=-45, max_value=45).filter(bool),
        )
        def correct_time(self, pick, minutes):
            """Move a step's time: refused when a later step would no longer hold."""
            events = [
                e
                for e in self.events_now()
                if e.seq > 1 and e.trigger not in d.CORRECTION_TRIGGERS and e.trigger != "sign_off"
            ]
            if not events:
                return
            target = events[pick % len(events)]
            seq = target.seq
            moved = target.occurred_at + timedelta(minutes=minutes)
            self.attempt(
                lambda: services.amend(
                    self.pathway,
                    seq,
                    {"occurred_at": moved.isoformat()},
                    "Dated wrongly",
                    self.users["coordinator"],
                    self.pathway.version,
                    uuid.uuid4().hex,
                ),
                "time corrected",
            )

        @rule(
            urgency=st.sampled_from(["emergency", "urgent", "routine"]),
            hours=st.integers(min_value=-48, max_value=48),
        )
        def correct_referral(self, urgency, hours):
            """Correct the referral's urgency and when it was received."""
            received = self.pathway.referral_received_at + timedelta(hours=hours)
            self.attempt(
                lambda: services.amend(
                    self.pathway,
                    1,
                    {"urgency": urgency, "referral_received_at": received.isoformat()},
                    "Referral letter re-read",
                    self.users["coordinator"],
                    self.pathway.version,
                    uuid.uuid4().hex,
                ),
                "referral corrected",
            )

        @rule(
            trigger=st.sampled_from(d.recordable()),
            minutes_back=st.integers(min_value=61, max_value=180),
        )
        def record_late(self, trigger, minutes_back):
            """A step entered after the fact, dated before steps already recorded (which are
            an hour apart)."""
            at = self.when() - timedelta(minutes=minutes_back)
            data = valid_data(trigger, self.pathway.state, at)
            created = self.attempt(
                lambda: services.record(
                    self.pathway,
                    trigger,
                    data,
                    at,
                    self.users["coordinator"],
                    self.pathway.version,
                    uuid.uuid4().hex,
                ),
                "late entry",
            )
            if created:
                assert at >= self.pathway.referral_received_at

        @rule(seq=st.integers(min_value=1, max_value=40), note=st.text(max_size=20))
        def amend(self, seq, note):
            self.attempt(
                lambda: services.amend(
                    self.pathway,
                    seq,
                    {"note": note or "corrected"},
                    "Typo",
                    self.users["coordinator"],
                    self.pathway.version,
                    uuid.uuid4().hex,
                )
            )

        @rule(actor=st.sampled_from(["coordinator", "admin", "surgeon"]))
        def void(self, actor):
            self.attempt(
                lambda: services.void_last_step(
                    self.pathway,
                    "Entered in error",
                    self.users[actor],
                    self.pathway.version,
                    uuid.uuid4().hex,
                )
            )

        def events_now(self) -> list[Event]:
            return db.session.scalars(
                select(Event).where(Event.pathway_id == self.pathway.id).order_by(Event.seq)
            ).all()

        @invariant()
        def consistent(self):
            events = self.events_now()
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert len(events) == self.events
            assert self.pathway.version == self.version == len(events)
            state, recurrences = History.from_events(events).replay()
            assert state == self.pathway.state
            assert recurrences == self.pathway.recurrence_count
            assert (self.pathway.closed_at is not None) == (state in d.FINAL_STATES)
            # The row and its clock rows are what a full replay derives, after every change.
            db.session.flush()
            db.session.expire(self.pathway, ["clocks", "facts"])
            history = History.from_events(events)
            replayed = derive.derive_for(self.pathway, history, datetime.now(UTC))
            assert derive.differences(self.pathway, replayed, self.pathway.clocks) == []
            # No clock stops before it starts, whatever the order things were entered in.
            assert all(
                c.stopped_at is None or c.stopped_at >= c.started_at for c in self.pathway.clocks
            )
            # And every step still holds where it stands (its time and its guards).
            assert timing.problems(history, datetime.now(UTC)) == {}

    run_state_machine_as_test(
        PathwayMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_random_sequences_keep_the_log_consistent(app):
    ACCEPTED.clear()
    run_machine(app)
    # The run did exercise the corrections and late entries, not only their refusals.
    assert {"time corrected", "referral corrected", "late entry"} <= set(ACCEPTED), ACCEPTED
