"""mme-local speed: its overhead over the container, cold and warm latency, the LRU hit rate, and
what "deployed means answering" costs a deploy.

One run starts a moto server (S3) and mme-local (which starts a real multi-model-server with the
SageMaker inference toolkit), then:

- Throughput: the same warm models called through mme-local (``POST /endpoints/<ep>/invocations``
  with ``X-Amzn-SageMaker-Target-Model``) and directly on the container's API
  (``POST /models/<m>/invoke``), from the same keep-alive client threads, in alternating rounds;
  guard: mme-local at most 20% below direct (medians of the rounds); exit 3 beyond it.
- Latency: the cold first invoke (S3 fetch + safe extraction + container load) and the warm p50
  through mme-local and direct, one connection, sequential.
- Zipf: 50 models with a memory budget for 10, requests drawn from a Zipf law; the measured hit
  rate, beside what an ideal LRU of 10 gives on the same trace.
- Deploy to first answer: ``mlops deploy MODEL@1 --target mme-local`` of fresh packages, timed
  from the command's start to its end (plan, publish, the warmup through the endpoint, which loads
  the model, and the alias switch), against publishing the same package's tarball alone.

    python bench/mme.py [--seconds 4] [--rounds 3] [--threads 4] [--zipf-requests 300] [--deploys 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moto_loopback import moto_server

from tests.servers.mme_models import make_model, tarball_bytes

BUCKET = "bench-mme"
BODY = json.dumps({"inputs": [1.0, 2.0, 3.0]}).encode()
MEMORY_MB = 64
GUARD = 0.20  # mme-local at most this much below the container alone


class Client:
    """One keep-alive connection with TCP_NODELAY and a cheap response parser, the same for both
    paths (with http.client, parsing the container's longer response headers in this process
    was the bottleneck and made the direct path look slower than the proxied one)."""

    def __init__(self, url: str) -> None:
        from mlops_cli.mme.containers import FastHttp

        host, port = url.removeprefix("http://").split(":")
        self.http = FastHttp(host, int(port))

    def post(self, path: str, headers: dict[str, str]) -> bytes:
        status, data, _ = self.http.post(path, BODY, headers)
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status}: {data[:200]!r}")
        return data


Call = Callable[[Client, str], bytes]


def via_mme(endpoint: str) -> Call:
    def call(client: Client, target: str) -> bytes:
        headers = {
            "Content-Type": "application/json",
            "X-Amzn-SageMaker-Target-Model": target,
        }
        return client.post(f"/endpoints/{endpoint}/invocations", headers)

    return call


def direct(endpoint: str) -> Call:
    from mlops_cli.mme.agent import container_name

    def call(client: Client, target: str) -> bytes:
        name = container_name(endpoint, target)
        return client.post(f"/models/{name}/invoke", {"Content-Type": "application/json"})

    return call


def throughput(url: str, call: Call, targets: list[str], threads: int, seconds: float) -> float:
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def worker(index: int) -> None:
        client = Client(url)
        i = index
        while time.monotonic() < stop:
            call(client, targets[i % len(targets)])
            counts[index] += 1
            i += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def latencies(url: str, call: Call, target: str, count: int) -> list[float]:
    client = Client(url)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call(client, target)
        samples.append(time.perf_counter() - started)
    return samples


def zipf_trace(models: int, requests: int, s: float, seed: int = 7) -> list[int]:
    weights = [1 / (rank**s) for rank in range(1, models + 1)]
    rng = random.Random(seed)
    ranks = list(range(models))
    rng.shuffle(ranks)  # popularity unrelated to the model's index
    return [ranks[i] for i in rng.choices(range(models), weights=weights, k=requests)]


def ideal_lru_hits(trace: list[int], capacity: int) -> float:
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for item in trace:
        if item in cache:
            hits += 1
            cache.move_to_end(item)
        else:
            cache[item] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits / len(trace)


def publish(s3: Any, root: Path, prefix: str, names: list[str]) -> None:
    for name in names:
        folder = make_model(root, name, memory_mb=MEMORY_MB)
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}{name}-v1.tar.gz", Body=tarball_bytes(folder))


def deploy_vs_publish(root: Path, url: str, count: int) -> tuple[list[float], list[float]]:
    """Seconds of each ``mlops deploy`` (to its first answer) and of publishing alone."""
    import yaml

    from mlops_cli.cli.main import main as mlops
    from mlops_cli.packages.upload import upload
    from mlops_cli.render.sagemaker import publish_tarball
    from mlops_cli.stores.local import LocalStore

    os.environ.update(
        MLOPS_REGISTRY=f"sqlite:///{root / 'registry.db'}", MLOPS_STORE=f"file://{root / 'store'}"
    )
    endpoint = root / "deploys.yaml"
    local = {"backend": "mms", "memory_budget_mb": 100 * MEMORY_MB, "url": url}
    endpoint.write_text(
        yaml.safe_dump({"name": "deploys", "s3_prefix": f"s3://{BUCKET}/deploys/", "local": local})
    )
    store = LocalStore(root / "store")
    deploys, publishes = [], []
    for index in range(count):
        folder = make_model(root / "deploy-src", f"d{index}", memory_mb=MEMORY_MB)
        with contextlib.redirect_stdout(io.StringIO()):
            if mlops(["register", str(folder), "--json"]) != 0:
                raise RuntimeError(f"register {folder} failed")
            started = time.perf_counter()
            args = ["deploy", f"d{index}@1", "--target", "mme-local", "--drain", "0", "--json"]
            code = mlops([*args, "--endpoint", str(endpoint)])
            deploys.append(time.perf_counter() - started)
        if code != 0:
            raise RuntimeError(f"deploy d{index}@1 failed")
        manifest = store.get_manifest(upload(folder, store).digest)  # stored already: no upload
        started = time.perf_counter()
        publish_tarball(store, manifest, f"s3://{BUCKET}/publish-only/d{index}.tar.gz")
        publishes.append(time.perf_counter() - started)
    return deploys, publishes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--models", type=int, default=4, help="warm models in the throughput runs")
    parser.add_argument("--cold", type=int, default=5, help="cold first invokes measured")
    parser.add_argument("--zipf-models", type=int, default=50)
    parser.add_argument("--zipf-budget-models", type=int, default=10)
    parser.add_argument("--zipf-requests", type=int, default=300)
    parser.add_argument("--zipf-s", type=float, default=1.1)
    parser.add_argument("--deploys", type=int, default=5, help="deploys timed to first answer")
    args = parser.parse_args()

    with moto_server() as s3_url, tempfile.TemporaryDirectory(prefix="bench-mme-") as tmp:
        os.environ.update(
            AWS_ENDPOINT_URL=s3_url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        )
        from mlops_cli import aws
        from mlops_cli.local.mme import LocalMME, http_json
        from mlops_cli.workspace import Workspace

        s3 = aws.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        root = Path(tmp)
        warm = [f"warm{i}" for i in range(args.models)]
        cold = [f"cold{i}" for i in range(args.cold)]
        zipf = [f"z{i:02d}" for i in range(args.zipf_models)]
        publish(s3, root / "src", "speed/", warm + cold)
        publish(s3, root / "src", "zipf/", zipf)

        manager = LocalMME(Workspace(root / ".mlops"))
        up = manager.up()
        try:
            url = up.state.http_url
            for name, prefix, budget in (
                ("speed", "speed/", 100 * MEMORY_MB),
                ("zipf", "zipf/", args.zipf_budget_models * MEMORY_MB + MEMORY_MB / 2),
            ):
                http_json(
                    f"{url}/mme/endpoints/{name}",
                    method="PUT",
                    body={"s3_prefix": f"s3://{BUCKET}/{prefix}", "memory_budget_mb": budget},
                )
            mme_call, direct_call = via_mme("speed"), direct("speed")
            warm_targets = [f"{n}-v1.tar.gz" for n in warm]
            client = Client(url)
            for target in warm_targets:  # load them (the first call also starts the container)
                mme_call(client, target)
            container = http_json(f"{url}/mme/status")["containers"]["mms"]

            # Cold first invokes (the container is up; each is S3 + extract + load + invoke).
            cold_s = []
            for name in cold:
                started = time.perf_counter()
                mme_call(client, f"{name}-v1.tar.gz")
                cold_s.append(time.perf_counter() - started)

            # Warm latency, sequential on one connection.
            for call, base in ((mme_call, url), (direct_call, container)):
                latencies(base, call, warm_targets[0], 50)
            warm_mme = latencies(url, mme_call, warm_targets[0], 400)
            warm_direct = latencies(container, direct_call, warm_targets[0], 400)

            # Throughput, alternating rounds.
            rates: dict[str, list[float]] = {"mme-local": [], "direct": []}
            for _ in range(args.rounds):
                rates["direct"].append(
                    throughput(container, direct_call, warm_targets, args.threads, args.seconds)
                )
                rates["mme-local"].append(
                    throughput(url, mme_call, warm_targets, args.threads, args.seconds)
                )

            # Zipf over 50 models, budget for 10.
            trace = zipf_trace(args.zipf_models, args.zipf_requests, args.zipf_s)
            zcall = via_mme("zipf")
            zclient = Client(url)
            started = time.perf_counter()
            for index in trace:
                zcall(zclient, f"{zipf[index]}-v1.tar.gz")
            zipf_seconds = time.perf_counter() - started
            models = http_json(f"{url}/mme/endpoints/zipf")["models"]
            hits = sum(m["cache_hits"] for m in models.values())
            loads = sum(m["loads"] for m in models.values())
            evictions = sum(m["evictions"] for m in models.values())
            speed_models = http_json(f"{url}/mme/endpoints/speed")["models"]
            load_times = [speed_models[f"{n}-v1.tar.gz"]["last_load_seconds"] for n in cold]

            deploy_s, publish_s = deploy_vs_publish(root, url, args.deploys)
        finally:
            manager.down()

    mme_rate = statistics.median(rates["mme-local"])
    direct_rate = statistics.median(rates["direct"])
    overhead = 1 - mme_rate / direct_rate
    print(f"{time.strftime('%Y-%m-%d')}  threads={args.threads} rounds={args.rounds}")
    print(
        "throughput direct   "
        + ", ".join(f"{r:,.0f}" for r in rates["direct"])
        + f" req/s  (median {direct_rate:,.0f})"
    )
    print(
        "throughput mme-local "
        + ", ".join(f"{r:,.0f}" for r in rates["mme-local"])
        + f" req/s  (median {mme_rate:,.0f})"
    )
    print(
        f"overhead of mme-local {overhead:.1%}   guard <= 20%  "
        + ("ok" if overhead <= GUARD else "MISSED")
    )
    print(
        f"cold first invoke     median {statistics.median(cold_s) * 1000:,.0f} ms "
        f"(of {len(cold_s)}: {', '.join(f'{s * 1000:.0f}' for s in cold_s)} ms; "
        f"load part median {statistics.median(load_times) * 1000:.0f} ms)"
    )
    print(
        f"warm p50 mme-local    {statistics.median(warm_mme) * 1000:.2f} ms   "
        f"direct {statistics.median(warm_direct) * 1000:.2f} ms   "
        f"(p99 {sorted(warm_mme)[int(len(warm_mme) * 0.99)] * 1000:.2f} / "
        f"{sorted(warm_direct)[int(len(warm_direct) * 0.99)] * 1000:.2f} ms)"
    )
    print(
        f"zipf s={args.zipf_s} {args.zipf_models} models, budget for {args.zipf_budget_models}, "
        f"{len(trace)} requests: hit rate {hits / len(trace):.1%} (ideal LRU "
        f"{ideal_lru_hits(trace, args.zipf_budget_models):.1%}), {loads} loads, "
        f"{evictions} evictions, {zipf_seconds:.1f} s"
    )
    deploy_median, publish_median = statistics.median(deploy_s), statistics.median(publish_s)
    print(
        f"deploy to first answer median {deploy_median * 1000:,.0f} ms "
        f"({', '.join(f'{x * 1000:.0f}' for x in deploy_s)} ms); publishing alone median "
        f"{publish_median * 1000:,.0f} ms: the rest (plan, registration, warmup with the "
        f"model's load, the switch) {(deploy_median - publish_median) * 1000:,.0f} ms"
    )
    return 0 if overhead <= GUARD else 3


if __name__ == "__main__":
    sys.exit(main())
