"""The order service, ports and adapters: handlers (Lambda entry points) -> logic -> models.

`logic/ports.py` declares what the logic needs from the outside (orders, the queue, storage,
Lambda, CodeDeploy) as Protocols; `dal/` implements those ports with boto3 (the adapters), so
`dal` imports `logic.ports` and `models`, never the other way round. Handlers pick the adapters
through `handlers/deps.py` (built on first use) and hand them to the logic; tests hand fakes.
Nothing here creates an AWS client or reads the environment at import time, so a cold start pays
only for what an invocation uses.
"""
