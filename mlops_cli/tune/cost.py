"""What a tuned configuration costs: the price table and the arithmetic.

The table is a YAML file (``schemas/instance-prices.schema.json``): the shipped default
(``schemas/instance-prices.yaml``: dated, approximate SageMaker real-time inference prices), or
the user's own copy (``--prices FILE``). A measured throughput per server becomes, for a traffic
level, the servers needed (rounded up: a server is paid whole) and the cost per million requests;
without a traffic level, the cost per million requests of one fully used server. The throughput
measured here is taken to hold on the priced instance type: that assumption is printed with
every cost.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_cli.errors import UsageError, ValidationError

DEFAULT_TABLE = "instance-prices.yaml"


class PriceTableError(ValidationError):
    """A price table that cannot be read or does not validate; exit code 2."""


@dataclass(frozen=True)
class InstancePrice:
    name: str
    price_per_hour: float
    gpus: int = 0
    vcpus: int | None = None
    memory_gib: float | None = None
    gpu: str | None = None


@dataclass(frozen=True)
class PriceTable:
    source: str  # the file it was read from
    as_of: str
    currency: str
    region: str
    instances: Mapping[str, InstancePrice]
    default_cpu: str | None = None
    default_gpu: str | None = None

    def choose(self, name: str | None, *, gpu: bool) -> InstancePrice:
        """The instance type ``name``, or the table's default for the device; UsageError naming
        the valid ones when it is not in the table."""
        wanted = name or (self.default_gpu if gpu else self.default_cpu)
        if wanted is None:
            raise UsageError(
                f"the price table {self.source} has no default_{'gpu' if gpu else 'cpu'}",
                hint="name an instance type with --instance-type",
            )
        if wanted not in self.instances:
            from mlops_cli.validation import suggestion

            raise UsageError(
                f"instance type {wanted!r} is not in the price table {self.source}",
                hint=suggestion(wanted, self.instances, noun="instance types"),
            )
        return self.instances[wanted]


@dataclass(frozen=True)
class Cost:
    """Serving one configuration's measured throughput per server on one instance type."""

    instance_type: str
    price_per_hour: float
    throughput_rps: float  # per server, as measured
    traffic_rps: float | None
    servers: int | None  # for the traffic level (None without one)
    per_hour: float  # every server needed (one without a traffic level)
    per_million: float  # cost of a million requests

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_type": self.instance_type,
            "price_per_hour": self.price_per_hour,
            "throughput_rps": round(self.throughput_rps, 2),
            "traffic_rps": self.traffic_rps,
            "servers": self.servers,
            "per_hour": None if math.isinf(self.per_hour) else round(self.per_hour, 4),
            "per_million": None if math.isinf(self.per_million) else round(self.per_million, 4),
        }


def cost_of(throughput_rps: float, price: InstancePrice, traffic_rps: float | None) -> Cost:
    """Servers needed for ``traffic_rps`` at ``throughput_rps`` each, and the cost per million
    requests (infinite for a throughput of zero)."""
    if throughput_rps <= 0:
        return Cost(price.name, price.price_per_hour, 0.0, traffic_rps, None, math.inf, math.inf)
    if traffic_rps is None:
        per_million = price.price_per_hour / (throughput_rps * 3600) * 1e6
        return Cost(
            price.name, price.price_per_hour, throughput_rps, None, None,
            price.price_per_hour, per_million,
        )  # fmt: skip
    servers = max(1, math.ceil(traffic_rps / throughput_rps - 1e-9))
    per_hour = servers * price.price_per_hour
    per_million = per_hour / (traffic_rps * 3600) * 1e6
    return Cost(
        price.name, price.price_per_hour, throughput_rps, traffic_rps, servers, per_hour,
        per_million,
    )  # fmt: skip


def load_prices(path: Path | None = None) -> PriceTable:
    """The price table at ``path`` (the shipped default when None), validated; errors name the
    file and the key."""
    from mlops_cli.validation import parse_yaml, read_yaml_file, validate_document

    if path is None:
        from mlops_cli.resources import schemas_dir

        entry = schemas_dir().joinpath(DEFAULT_TABLE)
        source = f"<shipped>/{DEFAULT_TABLE}"
        document = parse_yaml(
            entry.read_text(encoding="utf-8"), source=source, error_class=PriceTableError
        )
    else:
        source = str(path)
        missing = PriceTableError(
            f"price table {path} does not exist",
            hint="copy the shipped one (see `mlops tune --help`) and edit it",
        )
        document = read_yaml_file(path, error_class=PriceTableError, missing=missing)
    if isinstance(document, dict) and isinstance(document.get("as_of"), datetime.date):
        document["as_of"] = document["as_of"].isoformat()  # an unquoted date is a YAML date
    validate_document(document, "instance-prices", source=source, error_class=PriceTableError)
    instances = {
        name: InstancePrice(
            name=name,
            price_per_hour=float(row["price_per_hour"]),
            gpus=int(row.get("gpus", 0)),
            vcpus=row.get("vcpus"),
            memory_gib=row.get("memory_gib"),
            gpu=row.get("gpu"),
        )
        for name, row in document["instances"].items()
    }
    for key in ("default_cpu", "default_gpu"):
        if key in document and document[key] not in instances:
            raise PriceTableError(
                f"{document[key]!r} is not one of its instances",
                source=source,
                key_path=key,
                hint="name an instance type listed under instances",
            )
    return PriceTable(
        source=source,
        as_of=str(document["as_of"]),
        currency=str(document["currency"]),
        region=str(document.get("region", "")),
        instances=instances,
        default_cpu=document.get("default_cpu"),
        default_gpu=document.get("default_gpu"),
    )


__all__ = ["Cost", "InstancePrice", "PriceTable", "PriceTableError", "cost_of", "load_prices"]
