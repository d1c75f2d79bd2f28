"""Command line: argument parsing and wiring only; `python -m rehearsal` dispatches here."""
