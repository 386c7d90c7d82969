"""The Triton (KServe v2) protocol, owned in one place.

- :mod:`mlops_cli.triton.naming`: the ``<model>-v<version>`` name a registered version is served
  under.
- :mod:`mlops_cli.triton.codec`: KServe v2 tensors (encode by signature, decode, synthesize).
- :mod:`mlops_cli.triton.client`: one HTTP client for a Triton server (health, metadata, config,
  repository index, load/unload, statistics, infer, generate_stream), errors translated once.
- :mod:`mlops_cli.triton.grpc_client`: the gRPC infer and stream calls (tritonclient).

Nothing here imports numpy or tritonclient at module level, so importing the package is cheap.
"""
