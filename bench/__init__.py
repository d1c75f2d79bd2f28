"""`make bench`: measure the targets of issues 2-5 on this machine (medians, baselines, verdicts)."""
