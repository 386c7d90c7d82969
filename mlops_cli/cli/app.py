"""The Typer application: global options, and the commands loaded on demand.

Building every command's parameters costs more than the command that runs, so the root app
imports and builds only the command the arguments name. Every other command is registered as a
placeholder carrying just its one-line summary, which is all that root ``--help`` and the
"no such command" suggestions need. (``tests/cli/test_cli_frame.py`` checks that each summary
matches the real command's help.)
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from mlops_cli import __version__
from mlops_cli.cli import completion
from mlops_cli.cli.context import CliContext
from mlops_cli.cli.help_examples import attach_examples
from mlops_cli.errors import EXIT_INTERRUPTED

# name -> (module under mlops_cli.cli, attribute, is a group, one-line summary)
COMMANDS: dict[str, tuple[str, str, bool, str]] = {
    "init": (
        "init_cmd",
        "init",
        False,
        "Write mlops.yaml, runnable inference code and small generated weights into FOLDER.",
    ),
    "validate": (
        "validate_cmd",
        "validate",
        False,
        "Validate mlops.yaml against the schema, then check files, code, shapes and streaming.",
    ),
    "upload": (
        "upload_cmd",
        "upload",
        False,
        "Package SOURCE (every file with size and sha256) and send the blobs the store lacks.",
    ),
    "package": ("package_cmd", "app", True, "Inspect, download and render stored packages."),
    "store": ("store_cmd", "app", True, "Check and repair the artifact store."),
    "register": (
        "register_cmd",
        "register",
        False,
        "Record a package as the next immutable version of a model, with its lineage.",
    ),
    "models": ("models_cmd", "app", True, "List, inspect, update and archive registered models."),
    "alias": (
        "models_cmd",
        "alias_app",
        True,
        "Aliases (production, staging, ...) pointing at versions.",
    ),
    "route": (
        "route_cmd",
        "app",
        True,
        "Tenant routes: tenant -> model version, alias or canary split.",
    ),
    "deploy": (
        "deploy_cmd",
        "deploy",
        False,
        "Serve a registered version, cut over to it from the old one, and record it.",
    ),
    "undeploy": (
        "deploy_cmd",
        "undeploy",
        False,
        "Stop serving a model (every version, or one) on a target and forget the deployment.",
    ),
    "status": (
        "status_cmd",
        "status",
        False,
        "Show every deployment: target, server, version, state, drift, requests and latency.",
    ),
    "invoke": (
        "invoke_cmd",
        "invoke",
        False,
        "Send one request to the version a tenant is routed to, and print the answer.",
    ),
    "profile": (
        "profile_cmd",
        "profile",
        False,
        "Measure a version's memory and p50 latency on the local server and store them.",
    ),
    "registry": ("register_cmd", "registry_app", True, "Set up the registry backend."),
    "local": ("local_cmd", "app", True, "Run the embedded local Triton server."),
    "config": ("config_cmd", "app", True, "Inspect the effective configuration."),
    "tune": (
        "tune_cmd",
        "tune",
        False,
        "Find the serving configuration that meets an SLA with the most throughput or lowest cost.",
    ),
    "placement": (
        "placement_cmd",
        "app",
        True,
        "Plan which servers hold which model versions (memory, replicas, labels); rebalance.",
    ),
    "router": (
        "router_cmd",
        "app",
        True,
        "Serve models by stable name, each tenant routed to its version.",
    ),
    "perftest": (
        "perftest_cmd",
        "perftest",
        False,
        "Load a model endpoint and report latency percentiles, throughput and errors; gate on an SLA.",
    ),
}
_OPTIONS_WITH_VALUE = frozenset({"--config", "--set", *completion.OPTIONS})


def _print_version(value: bool) -> None:
    if value:
        print(f"mlops {__version__}")
        raise typer.Exit()


def _show_completion(value: str | None) -> None:
    if value is not None:
        print(completion.script(completion.resolve_shell(value)))
        raise typer.Exit()


def _install_completion(value: str | None) -> None:
    if value is not None:
        shell = completion.resolve_shell(value)
        path = completion.install(shell)
        print(f"{shell} completion installed in {path}; it takes effect in a new shell")
        raise typer.Exit()


def _root_callback(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print only the result, as one JSON document, on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notes.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More notes on stderr.")] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Project config file to use instead of .mlops/config.yaml."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override one setting (repeatable)."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    install_completion: Annotated[
        str | None,
        typer.Option(
            "--install-completion",
            metavar="[SHELL]",
            callback=_install_completion,
            is_eager=True,
            help="Install tab completion for SHELL (bash, zsh, fish, powershell; default: "
            "the shell running mlops).",
        ),
    ] = None,
    show_completion: Annotated[
        str | None,
        typer.Option(
            "--show-completion",
            metavar="[SHELL]",
            callback=_show_completion,
            is_eager=True,
            help="Print the completion script for SHELL, to install it by hand.",
        ),
    ] = None,
) -> None:
    """Global options; they may also be given after the subcommand."""
    ctx.obj = CliContext(
        json=json_output, quiet=quiet, verbose=verbose, config_file=config, set_pairs=set_ or []
    )


def requested_command(args: Sequence[str]) -> str | None:
    """The first positional argument (the command name), skipping global options."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def load_command(name: str) -> Any:
    """The real Typer group or command function of ``name``."""
    module, attribute, _, _ = COMMANDS[name]
    return getattr(importlib.import_module(f"mlops_cli.cli.{module}"), attribute)


def build_app(wanted: str | None = None) -> typer.Typer:
    """The root app with ``wanted`` loaded for real and every other command as a placeholder."""
    app = typer.Typer(
        name="mlops",
        help="Take a trained model from weights on disk to a versioned, routed, tested endpoint.",
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root_callback)
    for name, (_, _, is_group, summary) in COMMANDS.items():
        if name == wanted:
            target = load_command(name)
            if is_group:
                app.add_typer(target, name=name)
            else:
                app.command(name)(target)
        elif is_group:
            app.add_typer(typer.Typer(help=summary), name=name)
        else:
            app.command(name, help=summary, add_help_option=False)(_placeholder)
    return app


def _placeholder() -> None:  # pragma: no cover - replaced by the real command when named
    raise AssertionError("placeholder command ran")


def run(args: list[str]) -> int:
    """Run the app without Typer's own exit handling; errors propagate to ``main``.

    A shell's completion request names the command being completed in its environment, not in
    ``args``: that command is loaded for real so that its subcommands and options complete."""
    if completion.is_completion_request(os.environ):
        completion.enable()
        wanted = requested_command(completion.words_being_completed(os.environ))
    else:
        args = completion.name_the_shell(args)
        wanted = requested_command(args)
    command = typer.main.get_command(build_app(wanted))
    plain_usage_placeholders(command)
    attach_examples(command)
    result = command.main(args=args, prog_name="mlops", standalone_mode=False)
    if result == EXIT_INTERRUPTED:
        # Typer turns Ctrl-C into a silent exit code 130; ``main`` reports it like any outcome.
        raise KeyboardInterrupt
    return result if isinstance(result, int) else 0


def plain_usage_placeholders(command: Any) -> None:
    """Write positional arguments in usage lines as ``FOLDER`` / ``[FOLDER]``, as click and most
    command lines do: Typer 0.28 writes a required one as ``{folder}``, which reads like a
    template to fill in. Set on each argument instance (nothing is subclassed)."""
    for param in command.params:
        if param.param_type_name == "argument":
            text = param.metavar or (param.name or "").upper()
            if param.nargs != 1:
                text += "..."
            if not param.required:
                text = f"[{text}]"
            param.get_usage_pieces = lambda ctx, text=text: [text]
    for sub in getattr(command, "commands", {}).values():
        plain_usage_placeholders(sub)


def usage_error_class() -> type[Exception]:
    """The exception class Typer raises for a bad command line."""
    return typer.BadParameter.__mro__[1]  # UsageError: BadParameter's direct base
