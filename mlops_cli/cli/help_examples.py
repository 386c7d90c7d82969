"""The "Examples:" section at the end of every command's ``--help``, from one table.

Each command and group (by its path under ``mlops``; ``""`` is ``mlops`` itself) has one or more
example command lines, each optionally followed by ``# what it does``. Every line is a complete
``mlops`` command line that the command's own parser accepts: ``tests/cli/test_help_examples.py``
walks every command, reads its ``--help`` and parses each example against the real command.

:func:`attach_examples` sets the section as the epilog of each command of a built Click tree (an
attribute of the instance: nothing is subclassed). The command modules stay unaware of it, and a
new command without a row here fails that test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": (
        "mlops init iris --template triton-python    # a runnable model folder",
        "mlops register iris --alias production      # upload, then version 1",
        "mlops deploy iris                           # on the embedded local Triton",
        "mlops invoke iris --input '{\"features\": [5.1, 3.5, 1.4, 0.2]}'",
    ),
    "init": (
        "mlops init iris --template triton-python",
        "mlops init chat --template triton-python-stream --name chat-lm",
        "mlops init scorer --template sagemaker-mms",
    ),
    "validate": (
        "mlops validate iris             # exit 2 with the key path of each problem",
        "mlops validate                  # the current folder",
    ),
    "upload": (
        "mlops upload iris                                   # prints the package URI",
        "mlops upload iris --store s3://models/store",
        "mlops upload hf://org/name@main                     # a hub snapshot, pinned",
    ),
    "package": (
        "mlops package show sha256:3f9c2a",
        "mlops package render sha256:3f9c2a --format triton --out ./repository",
    ),
    "package show": (
        "mlops package show sha256:3f9c2a               # every file, size and sha256",
        "mlops package show s3://models/store/packages/sha256/3f9c2a.json",
    ),
    "package download": ("mlops package download sha256:3f9c2a ./out   # each file verified",),
    "package render": (
        "mlops package render sha256:3f9c2a --format triton --out ./repository --device cpu",
        "mlops package render sha256:3f9c2a --format sagemaker --out s3://models/iris.tar.gz",
    ),
    "store": ("mlops store verify --repair",),
    "store verify": (
        "mlops store verify                       # hash every blob; exit 1 if one is damaged",
        "mlops store verify --store s3://models/store --repair",
    ),
    "register": (
        "mlops register iris --alias staging",
        "mlops register sha256:3f9c2a --model iris --tag team=search --description retrained",
    ),
    "models": ("mlops models list", "mlops models versions iris"),
    "models list": ("mlops models list",),
    "models show": ("mlops models show iris      # aliases, routes, visibility",),
    "models versions": ("mlops models versions iris --json",),
    "models update": (
        "mlops models update iris --private-to acme,globex",
        "mlops models update iris --public --default-alias production",
    ),
    "models archive": ("mlops models archive iris 1   # refused while anything uses it",),
    "alias": ("mlops alias set iris production 2 --expect-version 1", "mlops alias list iris"),
    "alias set": (
        "mlops alias set iris production 2",
        "mlops alias set iris production 3 --expect-version 2   # exit 1 if it moved",
    ),
    "alias get": ("mlops alias get iris production",),
    "alias list": ("mlops alias list iris",),
    "alias delete": ("mlops alias delete iris staging --expect-version 3",),
    "route": ("mlops route set acme iris @production", "mlops route resolve acme iris"),
    "route set": (
        "mlops route set acme iris 2",
        "mlops route set acme iris @production --canary 4:10   # 10% to version 4",
    ),
    "route get": ("mlops route get acme iris",),
    "route list": ("mlops route list --tenant acme",),
    "route resolve": ("mlops route resolve acme iris --request-key order-17   # and why",),
    "route delete": ("mlops route delete acme iris   # acme gets the default alias again",),
    "deploy": (
        "mlops deploy iris@2 --dry-run                     # the plan; nothing changes",
        "mlops deploy iris@2                               # load, warm up, switch, drain",
        "mlops deploy iris --target triton --fleet fleet.yaml",
        "mlops deploy iris --target mme-local --endpoint endpoint.yaml",
        "mlops deploy tiny-lm@3 --target sagemaker-ic --endpoint ic.yaml  # its own component",
    ),
    "undeploy": (
        "mlops undeploy iris                               # every version",
        "mlops undeploy iris@1 --target triton --fleet fleet.yaml",
    ),
    "status": (
        "mlops status                    # exit 1 unless every deployment is READY",
        "mlops status iris --fleet fleet.yaml",
    ),
    "invoke": (
        "mlops invoke iris --tenant acme --input '{\"features\": [5.1, 3.5, 1.4, 0.2]}'",
        "mlops invoke tiny-lm --stream --protocol grpc --input @request.json",
    ),
    "profile": ("mlops profile iris@2 --requests 20   # memory and p50, stored on the version",),
    "registry": ("mlops registry init --registry dynamodb://mlops",),
    "registry init": ("mlops registry init --registry dynamodb://mlops   # idempotent",),
    "local": ("mlops local up", "mlops local status", "mlops local down"),
    "local up": (
        "mlops local up",
        "mlops local up --http-port 8000 --grpc-port 8001",
        "mlops local up --mme",
    ),
    "local down": ("mlops local down", "mlops local down --mme"),
    "local status": ("mlops local status --json      # exit 1 unless running",),
    "local logs": ("mlops local logs -n 100", "mlops local logs --follow"),
    "config": ("mlops config show",),
    "config show": (
        "mlops config show               # every setting and where it came from",
        "mlops config show --set target=triton --json",
    ),
    "tune": (
        "mlops tune iris@2 --sla 'p99<100ms' --budget 5m --report tune",
        "mlops tune iris@2 --sla 'p99<50ms' --objective cost --traffic 2000rps --apply",
    ),
    "placement": (
        "mlops placement plan --fleet fleet.yaml --all-deployed --replicas iris=2",
        "mlops placement apply --fleet fleet.yaml --all-deployed --replicas iris=2",
    ),
    "placement plan": (
        "mlops placement plan --fleet fleet.yaml --all-deployed --replicas iris=2",
        "mlops placement plan --models models.json --server-memory 24GiB --json",
    ),
    "placement apply": (
        "mlops placement apply --fleet fleet.yaml --all-deployed --dry-run",
        "mlops placement apply --fleet fleet.yaml iris@2 tiny-lm@1 --replicas iris=2",
    ),
    "placement rebalance": (
        "mlops placement rebalance --models models.json --server-memory 24GiB --from plan.json --max-moves 5",
    ),
    "placement simulate": (
        "mlops placement simulate --models 100000 --requests 1000000 --servers 200 --zipf 1.1",
        "mlops placement simulate --trace requests.csv --servers 20 --fail-servers 2",
    ),
    "router": ("mlops router serve --port 8700 --keys keys.yaml", "mlops router list"),
    "router serve": (
        "mlops router serve --port 8700 --keys keys.yaml",
        "mlops router serve --host 0.0.0.0 --port 8700 --trust-tenant-header --workers 4",
    ),
    "router list": ("mlops router list   # live routers and the routing revision each applied",),
    "router key": ("mlops router key create acme --keys keys.yaml",),
    "router key create": ("mlops router key create acme --keys keys.yaml   # prints the key once",),
    "perftest": (
        "mlops perftest iris --concurrency 1,4,16 --duration 10s --sla 'p99<250ms' --report perf",
        'mlops perftest tiny-lm --stream --requests 50 --template \'{"prompt": "hi {{i}}"}\'',
        "mlops perftest router://127.0.0.1:8700 -m iris --tenants acme,globex --rate 100",
        "mlops perftest sagemaker://gen-ic --inference-component tiny-lm-v3 --stream --requests 20"
        ' --template \'{"prompt": "hi {{i}}"}\'',
    ),
}


def examples_text(path: str) -> str | None:
    """The "Examples:" section of the command at ``path``, or None when it has none."""
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    # "\b" keeps Click from rewrapping the lines into one paragraph.
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def command_paths(command: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every command of a Click tree with its path (``""`` for the root), parents first."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, f"{path} {name}".strip())


def attach_examples(root: Any) -> None:
    """Set each command's epilog to its examples (commands with none keep theirs)."""
    for path, command in command_paths(root):
        text = examples_text(path)
        if text is not None:
            command.epilog = text
