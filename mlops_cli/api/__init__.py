"""The mlops library API: one keyword-only, typed function per use case.

The command line (:mod:`mlops_cli.cli`) is an adapter over these calls: it parses options, makes
one call, and renders the result. Scripts and services call them directly::

    from mlops_cli import api
    from mlops_cli.config import resolve_settings

    settings = resolve_settings()
    uploaded = api.upload(source="models/answer", settings=settings)
    version = api.register(source=uploaded.uri, settings=settings, alias="staging")
    api.deploy(ref="answer@staging", settings=settings)

Every call takes the :class:`~mlops_cli.config.Settings` it needs (stores, registry, workspace)
and, where it reports progress, a :class:`~mlops_cli.progress.Reporter` (silent by default). Each
returns a frozen result with ``to_dict()``; a call that finishes and still fails (validation
errors, drift, a gate not met, damage left) says so in its result's ``outcome`` instead of
raising, so that its result can be shown in full. Errors are :class:`~mlops_cli.errors.MlopsError`.
Heavy modules (boto3, tritonclient, numpy) are imported inside the calls that need them.
"""

from __future__ import annotations

from mlops_cli.api.local import (
    local_down,
    local_log,
    local_status,
    local_up,
    mme_down,
    mme_status,
    mme_up,
)
from mlops_cli.api.outcome import OK, Outcome
from mlops_cli.api.packages import (
    download,
    new_model_folder,
    register,
    render,
    show_package,
    upload,
    validate,
    verify_store,
)
from mlops_cli.api.perf import TargetOptions, perftest
from mlops_cli.api.registry import (
    archive_version,
    delete_alias,
    delete_route,
    get_alias,
    get_route,
    init_registry,
    list_aliases,
    list_models,
    list_routes,
    list_versions,
    resolve_route,
    set_alias,
    set_route,
    show_model,
    update_model,
)
from mlops_cli.api.serving import (
    DEFAULT_DRAIN_S,
    deploy,
    iam_policy,
    invoke,
    profile,
    status,
    undeploy,
)

__all__ = [
    "DEFAULT_DRAIN_S",
    "OK",
    "Outcome",
    "TargetOptions",
    "archive_version",
    "delete_alias",
    "delete_route",
    "deploy",
    "download",
    "get_alias",
    "get_route",
    "iam_policy",
    "init_registry",
    "invoke",
    "list_aliases",
    "list_models",
    "list_routes",
    "list_versions",
    "local_down",
    "local_log",
    "local_status",
    "local_up",
    "mme_down",
    "mme_status",
    "mme_up",
    "new_model_folder",
    "perftest",
    "profile",
    "register",
    "render",
    "resolve_route",
    "set_alias",
    "set_route",
    "show_model",
    "show_package",
    "status",
    "undeploy",
    "update_model",
    "upload",
    "validate",
    "verify_store",
]
