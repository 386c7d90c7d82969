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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from mlops_cli.api.placement import placement_apply, placement_plan, placement_rebalance
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
    from mlops_cli.api.router import create_key, live_routers, serve_router
    from mlops_cli.api.router_client import invoke_via_router
    from mlops_cli.api.serving import (
        DEFAULT_DRAIN_S,
        deploy,
        iam_policy,
        invoke,
        profile,
        status,
        undeploy,
    )
    from mlops_cli.api.tuning import tune

# Each name's module, imported on first use: a command pays only for the calls it makes (`mlops
# upload` never imports the deploy targets).
_HOME: dict[str, str] = {
    "DEFAULT_DRAIN_S": "serving",
    "OK": "outcome",
    "Outcome": "outcome",
    "TargetOptions": "perf",
    "archive_version": "registry",
    "create_key": "router",
    "live_routers": "router",
    "serve_router": "router",
    "delete_alias": "registry",
    "delete_route": "registry",
    "deploy": "serving",
    "download": "packages",
    "get_alias": "registry",
    "get_route": "registry",
    "iam_policy": "serving",
    "init_registry": "registry",
    "invoke": "serving",
    "invoke_via_router": "router_client",
    "list_aliases": "registry",
    "list_models": "registry",
    "list_routes": "registry",
    "list_versions": "registry",
    "local_down": "local",
    "local_log": "local",
    "local_status": "local",
    "local_up": "local",
    "mme_down": "local",
    "mme_status": "local",
    "mme_up": "local",
    "new_model_folder": "packages",
    "perftest": "perf",
    "placement_apply": "placement",
    "placement_plan": "placement",
    "placement_rebalance": "placement",
    "profile": "serving",
    "register": "packages",
    "render": "packages",
    "resolve_route": "registry",
    "set_alias": "registry",
    "set_route": "registry",
    "show_model": "registry",
    "show_package": "packages",
    "status": "serving",
    "tune": "tuning",
    "undeploy": "serving",
    "update_model": "registry",
    "upload": "packages",
    "validate": "packages",
    "verify_store": "packages",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_DRAIN_S",
    "OK",
    "Outcome",
    "TargetOptions",
    "archive_version",
    "create_key",
    "delete_alias",
    "delete_route",
    "deploy",
    "download",
    "get_alias",
    "get_route",
    "iam_policy",
    "init_registry",
    "invoke",
    "invoke_via_router",
    "list_aliases",
    "list_models",
    "list_routes",
    "list_versions",
    "live_routers",
    "local_down",
    "local_log",
    "local_status",
    "local_up",
    "mme_down",
    "mme_status",
    "mme_up",
    "new_model_folder",
    "perftest",
    "placement_apply",
    "placement_plan",
    "placement_rebalance",
    "profile",
    "register",
    "render",
    "resolve_route",
    "serve_router",
    "set_alias",
    "set_route",
    "show_model",
    "show_package",
    "status",
    "tune",
    "undeploy",
    "update_model",
    "upload",
    "validate",
    "verify_store",
]
