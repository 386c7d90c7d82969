"""mme-local: a loopback server that speaks the sagemaker-runtime wire protocol and plays the
SageMaker multi-model endpoint agent (fetch ``model.tar.gz`` from S3 on first use, extract it
safely, load it into a real container, evict least-recently-used models beyond a memory budget).

:mod:`mlops_cli.local.mme` starts and stops it (``mlops local up --mme``);
:mod:`mlops_cli.mme.server` is the HTTP front (an asyncio event loop; :mod:`~.http_front` its
connections, :mod:`~.upstream` its non-blocking container connections), :mod:`mlops_cli.mme.agent`
the model cache, :mod:`mlops_cli.mme.containers` the container API clients.
"""
