"""Business logic. Talks to AWS only through the ports in `logic/ports.py`."""
