"""The order service: handlers (Lambda entry points) -> logic -> dal (boto3) -> models.

Every import points down that chain. Nothing here creates an AWS client or reads the
environment at import time, so a cold start pays only for what an invocation uses.
"""
