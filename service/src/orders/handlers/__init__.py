"""Lambda entry points: parse the event, call the logic, map the result. Nothing else."""
