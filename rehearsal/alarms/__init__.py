"""Metrics as CloudWatch holds them, and the alarm evaluator."""
