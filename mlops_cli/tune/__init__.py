"""``mlops tune``: the serving configuration of a registered version that meets an SLA at the most
throughput (or the lowest cost), found by measuring candidates on a real Triton server.

- :mod:`~mlops_cli.tune.space`: what can be tuned (model instances, ``max_batch_size``, preferred
  batch sizes, queue delay) and the client load levels; which dimensions a model cannot use.
- :mod:`~mlops_cli.tune.measurement`: one candidate measured, and the SLA's verdict on it.
- :mod:`~mlops_cli.tune.search`: the search itself, pure logic over a ``Bench`` (load a
  configuration, measure it at one load level): a coordinate search that prunes, or the full grid.
- :mod:`~mlops_cli.tune.candidates`: the Bench on a Triton server (the local one or a fleet's),
  each candidate loaded under a name of its own and measured with the perf engine.
- :mod:`~mlops_cli.tune.cost`: the price table and the cost of serving a traffic level.
- :mod:`~mlops_cli.tune.result`, :mod:`~mlops_cli.tune.report`: the typed result and its
  Markdown and HTML reports; :mod:`~mlops_cli.tune.apply`: the tuned version, registered.
"""
