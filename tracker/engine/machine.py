"""The one state machine, built once from the definition and shared by every row.

``transitions`` keeps no per-row objects here (model=None): a trigger is fired
on an ORM row with ``MACHINE.events[trigger].trigger(row, ...)``, which reads
and writes ``row.state`` and asks the guard methods of ``Pathway``.
"""

from __future__ import annotations

from contextlib import contextmanager

from transitions import Machine
from transitions.core import EventData

from tracker.engine import steps as d


def _spec(t: d.Transition) -> dict:
    return {
        "trigger": t.trigger,
        "source": list(t.sources),
        "dest": t.dest,  # None: internal, the state stays
        "conditions": list(t.guards),  # callables: Guard(history=..., data=..., ...)
    }


MACHINE = Machine(
    model=None,
    states=list(d.STATES),
    initial=d.INITIAL_STATE,
    transitions=[_spec(t) for t in d.transitions()],
    auto_transitions=False,
    model_attribute="state",
    send_event=False,
    ignore_invalid_triggers=False,
)


@contextmanager
def extra_step(entry: d.StepDef):
    """Declare one more step for the duration of the block: the registry and the machine
    both know it (for tests of "one entry is the only edit")."""
    d.REGISTRY_ENTRIES.add(entry)
    for t in d.transitions():
        if t.trigger == entry.trigger:
            MACHINE.add_transition(**_spec(t))
    try:
        yield entry
    finally:
        MACHINE.remove_transition(entry.trigger)
        MACHINE.events.pop(entry.trigger, None)
        d.REGISTRY_ENTRIES.remove(entry.trigger)


def fire(row, trigger: str, **kwargs) -> bool:
    """Fire ``trigger`` on ``row``; False when a guard refuses. MachineError if not allowed."""
    return MACHINE.events[trigger].trigger(row, **kwargs)


def guards_pass(row, trigger: str, **kwargs) -> bool:
    """Would ``trigger`` pass its guards now? Checks, changes nothing."""
    event = MACHINE.events.get(trigger)
    if event is None or row.state not in event.transitions:
        return False
    event_data = EventData(MACHINE.get_state(row.state), event, MACHINE, row, (), kwargs)
    return any(
        all(condition.check(event_data) for condition in transition.conditions)
        for transition in event.transitions[row.state]
    )


def expected_destination(trigger: str, state: str | None) -> str | None:
    """Where ``trigger`` leads from ``state`` in the machine, or None if it is not allowed."""
    event = MACHINE.events.get(trigger)
    if state is None or event is None or state not in event.transitions:
        return None
    transition = event.transitions[state][0]
    return transition.dest or state


def graph() -> tuple[list[str], list[tuple[str, str, str]]]:
    """States and (source, dest, trigger) edges as the running machine holds them."""
    edges = []
    for name, event in MACHINE.events.items():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                edges.append((source, transition.dest or source, name))
    return list(MACHINE.states), edges
