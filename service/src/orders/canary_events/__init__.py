"""Synthetic events for the PreTraffic hook, one `<function>.json` per handler module."""
