"""Tracking: the coordinator's tracking note and the tasks (next actions) of a pathway.

Both are steps of the engine's registry (``add_tracking_note``, ``add_task``,
``update_task``, ``complete_task``, ``cancel_task``), so each is an event on the timeline;
the derivation keeps the latest note on the pathway row and one ``pathway_task`` row per
task. This package records them for the pages, the API and bulk actions, adds the checks
the engine cannot make (the owner's team, a due date not before today), and reads the
rows for the lists.
"""
