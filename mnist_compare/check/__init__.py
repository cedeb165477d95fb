"""Checking and grading a net: `--check`'s table of checks (checks.py) with its comparisons of one step
(steps.py), of several (runs.py) and their tolerances (tolerances.py). Uses the nets and the records; training
runs never import it."""
