"""The one state machine, built once from the definition and shared by every row.

``transitions`` keeps no per-row objects here (model=None): a trigger is fired
on an ORM row with ``MACHINE.events[trigger].trigger(row, ...)``, which reads
and writes ``row.state`` and asks the guard methods of ``Pathway``.
"""

from __future__ import annotations

from transitions import Machine
from transitions.core import EventData

from tracker.pathway import definition as d

MACHINE = Machine(
    model=None,
    states=list(d.STATES),
    initial=d.INITIAL_STATE,
    transitions=[
        {
            "trigger": t.trigger,
            "source": list(t.sources),
            "dest": t.dest,  # None: internal, the state stays
            "conditions": list(t.conditions),
        }
        for t in d.TRANSITIONS
    ],
    auto_transitions=False,
    model_attribute="state",
    send_event=False,
    ignore_invalid_triggers=False,
)


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
