"""The pathway engine: states, steps, fields, scores, history, clocks, derivation,
services and verification. No web framework and no feature package is imported here;
feature packages import the engine."""
