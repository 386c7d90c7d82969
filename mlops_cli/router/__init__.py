"""The router service (``mlops router serve``): one stable name per model, each tenant sent to its
version wherever it is served.

- :mod:`~mlops_cli.router.table`: the routing state in memory, and resolution on it.
- :mod:`~mlops_cli.router.refresh`: keeping it current from the registry; heartbeats.
- :mod:`~mlops_cli.router.service`: the request path (tenant, version, server, answer).
- :mod:`~mlops_cli.router.upstream`: keep-alive, streaming connections to model servers.
- :mod:`~mlops_cli.router.auth`: API keys, stored hashed, mapped to tenants.
- :mod:`~mlops_cli.router.metrics`: Prometheus metrics with bounded tenant labels.
- :mod:`~mlops_cli.router.serve`: worker processes and the event loop.
The drain a deploy waits for, on the routers' heartbeats, is :mod:`mlops_cli.deploy.drain`.
"""
