"""Streaming through an inference component: Triton's own ``generate_stream`` against the same
stream through mme-local's inference-components mode and through `mlops router serve`, side by
side in one run.

    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/ic_stream.py [--turns 5]
        [--streams 20] [--tokens 16] [--gap-ms 10] [--burst-streams 3] [--burst-tokens 2000]
        [--turn-seconds 30]

One run starts a moto server (the SageMaker control plane and S3, with the inference-component
patches of tests/servers/moto_launcher.py) and mme-local reading it (its own tritonserver), deploys
``bench/models/tokens`` with ``mlops deploy --target sagemaker-ic`` (endpoint, component, the
record) and starts ``mlops router serve`` (one worker) over the registry holding that record. The
model is decoupled: ``count`` tokens ``gap_us`` apart, each carrying the time it was produced.

Four ways, one stream at a time from this process, taking turns (the order flips every turn):

- ``direct``: Triton's ``/v2/models/<m>/generate_stream`` on the container mme-local loaded the
  component into, server-sent events as they arrive. The baseline.
- ``mme-boto3``: boto3 ``invoke_endpoint_with_response_stream(InferenceComponentName=...)`` at
  mme-local, as a SageMaker user streams.
- ``mme-http``: the same route with a plain HTTP client decoding the event-stream frames
  (botocore's ``EventStreamBuffer``): mme-local's own cost, without boto3's request and parsing.
- ``router``: the router's ``/v2/models/tokens/generate_stream`` (tenant header); it calls
  mme-local with boto3 on its blocking pool.

Each turn has a paced part (``--streams`` streams of ``--tokens`` tokens ``--gap-ms`` apart): time
to first token (request sent to first token read), the gap between tokens as read, and how late
each token is read after it was produced (same clock); and a burst part (``--burst-streams`` of
``--burst-tokens`` with no gap): tokens per second per stream, and the CPU per token of each group
of processes over that part (Triton with its stubs, mme-local, the router, this client). p50:
median of the turns' medians; p99: over every stream. Every loop is bounded in count and in time
(``--turn-seconds`` per way and part, a 60 s limit per stream); every server is stopped by its pid.

Targets: time to first token added by mme-local (boto3, as users call it) <= 5 ms p50, by
mme-local alone (plain client) <= 2 ms, by the router <= 10 ms; tokens read at most 1 ms (mme-local)
or 2 ms (router) later than directly (p50); the gap between tokens within 1.1x of direct; tokens
per second per stream >= 0.8x direct; each front's CPU per token no more than Triton's own for
producing the token; no stream failed. Exit 3 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from router_load import REPO, Verdict, cpu_seconds, descendants_of, print_verdicts

sys.path.insert(0, str(REPO))  # tests.servers: the moto and router harnesses the tests use

MODEL = Path(__file__).resolve().parent / "models" / "tokens"
MLOPS = [sys.executable, "-m", "mlops_cli"]
ENDPOINT, COMPONENT, BUCKET = "bench-ic", "tokens-v1", "bench-ic"
ROLE = "arn:aws:iam::123456789012:role/bench-ic"
TENANT = {"X-Tenant-Id": "bench"}
STREAM_LIMIT_S = 60.0  # one stream, from the request to its last byte
WAYS = ("direct", "mme-boto3", "mme-http", "router")


class StreamError(Exception):
    """A stream that failed, answered an error or did not carry the tokens asked for."""


class Recorder:
    """The tokens of one stream, read from server-sent events fed in pieces of any size."""

    def __init__(self, count: int) -> None:
        self.count, self.rest = count, b""
        self.arrived: list[float] = []  # perf_counter when each token was read
        self.late: list[float] = []  # seconds between a token's production and its reading
        self.pieces = 0  # how many pieces the client was handed (reads, or PayloadParts)
        self.started = time.perf_counter()

    def feed(self, data: bytes) -> None:
        now, wall = time.perf_counter(), time.time()
        if now - self.started > STREAM_LIMIT_S:
            raise StreamError(f"the stream took more than {STREAM_LIMIT_S:g} s")
        self.pieces += 1
        *lines, self.rest = (self.rest + data).split(b"\n")
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            event = json.loads(line[5:])
            if "error" in event:
                raise StreamError(str(event["error"])[:200])
            token = event["token"][0] if isinstance(event["token"], list) else event["token"]
            index, _, produced = str(token).partition("@")
            if len(self.arrived) >= self.count or int(index) != len(self.arrived):
                raise StreamError(f"token {index} read where {len(self.arrived)} was due")
            self.arrived.append(now)
            self.late.append(wall - float(produced))

    def sample(self) -> Sample:
        if len(self.arrived) != self.count:
            raise StreamError(f"{len(self.arrived)} tokens read of {self.count}")
        first, last = self.arrived[0], self.arrived[-1]
        gaps = [b - a for a, b in zip(self.arrived, self.arrived[1:], strict=False)]
        return Sample(first - self.started, gaps, self.late, last - self.started, self.pieces)


@dataclass(frozen=True)
class Sample:
    ttft_s: float
    gaps_s: list[float]
    late_s: list[float]
    seconds: float  # request sent to last token read
    pieces: int


Way = Callable[[bytes, Recorder], None]


class HttpStream:
    """POSTs on one keep-alive connection, each answer's body handed on as it arrives."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=STREAM_LIMIT_S)

    def post(
        self, path: str, body: bytes, headers: Mapping[str, str], on: Callable[[bytes], None]
    ) -> None:
        try:
            self.conn.request("POST", path, body, {"Content-Type": "application/json", **headers})
            response = self.conn.getresponse()
            if response.status != 200:
                raise StreamError(f"HTTP {response.status}: {response.read()[:200]!r}")
            while data := response.read1(65536):
                on(data)
        except BaseException:
            self.conn.close()  # the next request opens a new connection
            raise


def sse_way(url: str, path: str, headers: Mapping[str, str]) -> Way:
    client = HttpStream(url)
    return lambda body, recorder: client.post(path, body, headers, recorder.feed)


def event_stream_way(url: str) -> Way:
    """mme-local's response-stream route read with a plain client: each PayloadPart's bytes."""
    from botocore.eventstream import EventStreamBuffer

    client = HttpStream(url)
    path = f"/endpoints/{ENDPOINT}/invocations-response-stream"
    headers = {"X-Amzn-SageMaker-Inference-Component": COMPONENT}

    def run(body: bytes, recorder: Recorder) -> None:
        frames = EventStreamBuffer()

        def on_data(data: bytes) -> None:
            frames.add_data(data)
            for message in frames:
                kind = message.headers.get(":event-type") or message.headers.get(":exception-type")
                if kind != "PayloadPart":
                    raise StreamError(f"{kind}: {message.payload[:200]!r}")
                recorder.feed(message.payload)

        client.post(path, body, headers, on_data)

    return run


def boto3_way(url: str) -> Way:
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(read_timeout=STREAM_LIMIT_S, retries={"max_attempts": 1}),
    )

    def run(body: bytes, recorder: Recorder) -> None:
        response = client.invoke_endpoint_with_response_stream(
            EndpointName=ENDPOINT,
            InferenceComponentName=COMPONENT,
            Body=body,
            ContentType="application/json",
        )
        for event in response["Body"]:
            if "PayloadPart" in event:
                recorder.feed(event["PayloadPart"]["Bytes"])

    return run


# -- the turns ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """The streams of one way in one part of a turn, and the CPU each group used over them."""

    samples: list[Sample]
    failures: list[str]
    cpu_us: dict[str, float] = field(default_factory=dict)  # per token read, by group


@dataclass(frozen=True)
class Turn:
    paced: Part
    burst: Part


Groups = Mapping[str, Sequence[int]]


def cpu_of(groups: Groups) -> dict[str, float]:
    """CPU seconds so far of each group of processes, and of this process (the client)."""
    used = {name: cpu_seconds(pids) for name, pids in groups.items()}
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {**used, "client": own.ru_utime + own.ru_stime}


def run_part(
    way: Way, count: int, gap_us: int, streams: int, seconds: float, groups: Groups
) -> Part:
    """Up to ``streams`` streams one after the other, none started after ``seconds``."""
    body = json.dumps({"count": count, "gap_us": gap_us}).encode()
    samples: list[Sample] = []
    failures: list[str] = []
    before = cpu_of(groups)
    deadline = time.monotonic() + seconds
    for _ in range(streams):
        if time.monotonic() > deadline:
            break
        recorder = Recorder(count)
        try:
            way(body, recorder)
            samples.append(recorder.sample())
        except Exception as exc:  # a failed stream is a result: counted, and the turn goes on
            failures.append(f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}")
    tokens = max(1, count * len(samples))
    after = cpu_of(groups)
    return Part(samples, failures, {g: (after[g] - before[g]) * 1e6 / tokens for g in after})


def take_turns(
    ways: Mapping[str, Way], args: argparse.Namespace, groups: Groups
) -> dict[str, list[Turn]]:
    """Each way once per turn, paced then burst; the order flips every turn."""
    names = list(ways)
    turns: dict[str, list[Turn]] = {name: [] for name in names}
    gap_us = round(args.gap_ms * 1000)
    for turn in range(args.turns):
        for name in names if turn % 2 == 0 else names[::-1]:
            paced = run_part(
                ways[name], args.tokens, gap_us, args.streams, args.turn_seconds, groups
            )
            burst = run_part(
                ways[name], args.burst_tokens, 0, args.burst_streams, args.turn_seconds, groups
            )
            turns[name].append(Turn(paced, burst))
    return turns


# -- the figures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """One way's figures: p50 are medians of the turns' medians (seconds unless named)."""

    ttft_p50: float
    ttft_p99: float
    gap_p50: float
    late_p50: float
    tokens_per_s: float
    tokens_per_piece: float  # burst: how many tokens the client read at once
    cpu_us: dict[str, float]  # per token, burst parts
    streams: int
    failures: list[str]


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


def median_of_turns(turns: Sequence[Turn], pick: Callable[[Turn], list[float]]) -> float:
    medians = [statistics.median(found) for turn in turns if (found := pick(turn))]
    return statistics.median(medians) if medians else float("nan")


def figures_of(turns: Sequence[Turn]) -> Figures:
    def paced(get: Callable[[Sample], list[float]]) -> Callable[[Turn], list[float]]:
        return lambda turn: [value for sample in turn.paced.samples for value in get(sample)]

    groups = turns[0].burst.cpu_us
    return Figures(
        ttft_p50=median_of_turns(turns, paced(lambda s: [s.ttft_s])),
        ttft_p99=p99([s.ttft_s for turn in turns for s in turn.paced.samples]),
        gap_p50=median_of_turns(turns, paced(lambda s: s.gaps_s)),
        late_p50=median_of_turns(turns, paced(lambda s: s.late_s)),
        tokens_per_s=median_of_turns(
            turns, lambda t: [len(s.late_s) / s.seconds for s in t.burst.samples]
        ),
        tokens_per_piece=median_of_turns(
            turns, lambda t: [len(s.late_s) / s.pieces for s in t.burst.samples]
        ),
        cpu_us={g: statistics.median(t.burst.cpu_us[g] for t in turns) for g in groups},
        streams=sum(len(t.paced.samples) + len(t.burst.samples) for t in turns),
        failures=[f for t in turns for f in (*t.paced.failures, *t.burst.failures)],
    )


def report(found: Mapping[str, Figures], args: argparse.Namespace) -> list[Verdict]:
    """Print each way's figures and their ratios to ``direct``; the verdicts."""
    print(
        f"\n{args.turns} turns; paced: {args.streams} streams of {args.tokens} tokens "
        f"{args.gap_ms:g} ms apart; burst: {args.burst_streams} streams of {args.burst_tokens} "
        "tokens, no gap"
    )
    groups = list(next(iter(found.values())).cpu_us)
    print(
        f"  {'way':<10} {'TTFT p50':>9} {'p99':>9} {'gap p50':>9} {'late p50':>9} "
        f"{'tokens/s':>9} {'tok/piece':>9}   CPU us/token: "
        + " ".join(f"{g:>9}" for g in groups)
        + "   streams"
    )
    for name, fig in found.items():
        cpu = " ".join(f"{fig.cpu_us[g]:>9.1f}" for g in groups)
        print(
            f"  {name:<10} {fig.ttft_p50 * 1e3:>6.2f} ms {fig.ttft_p99 * 1e3:>6.2f} ms "
            f"{fig.gap_p50 * 1e3:>6.2f} ms {fig.late_p50 * 1e3:>6.2f} ms "
            f"{fig.tokens_per_s:>9,.0f} {fig.tokens_per_piece:>9.1f}                 {cpu}   {fig.streams} "
            f"({len(fig.failures)} failed)"
        )
    base = found["direct"]
    print("\nagainst direct:")
    for name, fig in found.items():
        if name == "direct":
            continue
        print(
            f"  {name:<10} TTFT p50 {fig.ttft_p50 / base.ttft_p50:.2f}x "
            f"({(fig.ttft_p50 - base.ttft_p50) * 1e3:+.2f} ms)   p99 "
            f"{fig.ttft_p99 / base.ttft_p99:.2f}x   gap p50 {fig.gap_p50 / base.gap_p50:.2f}x   "
            f"late p50 {(fig.late_p50 - base.late_p50) * 1e3:+.2f} ms   tokens/s "
            f"{fig.tokens_per_s / base.tokens_per_s:.2f}x"
        )
    for fig in found.values():
        for failure in sorted(set(fig.failures))[:3]:
            print(f"  failed: {failure}")
    return verdicts(found)


def verdicts(found: Mapping[str, Figures]) -> list[Verdict]:
    base = found["direct"]
    triton_us = base.cpu_us["triton"]
    out = []
    for name, limit in (("mme-boto3", 5.0), ("mme-http", 2.0), ("router", 10.0)):
        added = (found[name].ttft_p50 - base.ttft_p50) * 1e3
        out.append(
            Verdict(
                f"TTFT p50 added, {name}", f"{added:+.2f} ms", f"<= {limit:g} ms", added <= limit
            )
        )
    for name, limit in (("mme-http", 1.0), ("router", 2.0)):
        late = (found[name].late_p50 - base.late_p50) * 1e3
        out.append(
            Verdict(
                f"token late p50 added, {name}",
                f"{late:+.2f} ms",
                f"<= {limit:g} ms",
                late <= limit,
            )
        )
    for name in ("mme-boto3", "mme-http", "router"):
        gap = found[name].gap_p50 / base.gap_p50
        out.append(Verdict(f"gap p50 / direct, {name}", f"{gap:.2f}x", "<= 1.1x", gap <= 1.1))
        rate = found[name].tokens_per_s / base.tokens_per_s
        out.append(Verdict(f"tokens/s / direct, {name}", f"{rate:.2f}x", ">= 0.8x", rate >= 0.8))
    for name, group in (("mme-http", "mme-local"), ("router", "router")):
        used = found[name].cpu_us[group]
        out.append(
            Verdict(
                f"{group} CPU/token ({name})",
                f"{used:.1f} us",
                f"<= {triton_us:.1f} us",
                used <= triton_us,
            )
        )
    failed = sum(len(fig.failures) for fig in found.values())
    out.append(Verdict("failed streams", f"{failed}", "0", failed == 0))
    return out


# -- the servers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    mme_url: str
    router_url: str
    triton_url: str
    container_name: str  # the component's model in the container
    groups: dict[str, list[int]]  # the processes of Triton, mme-local and the router


def mlops(env: Mapping[str, str], cwd: Path, *args: str) -> None:
    out = subprocess.run(
        [*MLOPS, *args, "--json"],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"mlops {' '.join(args)} failed: {out.stderr.strip()[-2000:]}")


def deploy(root: Path, env: Mapping[str, str]) -> None:
    """The tokens model registered and deployed as component ``tokens-v1`` of ``bench-ic``."""
    import boto3
    import yaml

    boto3.session.Session().client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    shutil.copytree(MODEL, root / "tokens")
    endpoint = root / "endpoint.yaml"
    document = {
        "name": ENDPOINT,
        "s3_prefix": f"s3://{BUCKET}/{ENDPOINT}/",
        "role_arn": ROLE,
        "instance_type": "ml.m5.2xlarge",
        "inference_components": {
            "managed_scaling": {"min": 1, "max": 1},
            "copies": 1,
            "autoscaling": {"min": 1, "max": 1, "target_invocations_per_copy": 5},
        },
        "alarms": {"enabled": False},
    }
    endpoint.write_text(yaml.safe_dump(document))
    mlops(env, root, "register", str(root / "tokens"), "--alias", "production")
    target = ("--target", "sagemaker-ic", "--endpoint", str(endpoint), "--drain", "0")
    mlops(env, root, "deploy", "tokens@1", *target)


@contextlib.contextmanager
def served(root: Path) -> Iterator[Served]:
    """moto, mme-local reading it, the component deployed and a router over its record; each
    stopped by its pid on the way out."""
    from mlops_cli.local.mme import LocalMME, http_json
    from mlops_cli.workspace import Workspace
    from tests.servers.moto import MotoServer
    from tests.servers.router import RouterProcess

    with contextlib.ExitStack() as stack:
        moto = stack.enter_context(MotoServer())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AWS_"))}
        env.update(moto.env(), XDG_CONFIG_HOME=str(root / "xdg"))
        manager = LocalMME(Workspace(root / "mme-ws"))
        manager.up(environ=env)
        stack.callback(manager.down)
        mme_url = manager.url()
        env.update(
            AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=mme_url,
            MLOPS_WORKSPACE=str(manager.workspace.root),
            MLOPS_REGISTRY=f"sqlite:///{root / 'registry.db'}",
            MLOPS_STORE=f"file://{root / 'store'}",
        )
        deploy(root, env)
        args = ("--trust-tenant-header", "--workers", "1")
        router = stack.enter_context(RouterProcess(env["MLOPS_REGISTRY"], *args, env=env))
        component = http_json(f"{mme_url}/mme/components")["components"][COMPONENT]
        state = manager.read_state()
        if component["container_name"] is None or state is None or router.process is None:
            raise SystemExit(f"the component is not loaded: {component}")
        yield Served(
            mme_url=mme_url,
            router_url=router.url,
            triton_url=http_json(f"{mme_url}/mme/status")["containers"]["triton"],
            container_name=component["container_name"],
            groups={
                "triton": descendants_of(state.pid),
                "mme-local": [state.pid],
                "router": [router.process.pid],
            },
        )


def ways_of(served: Served) -> dict[str, Way]:
    direct = f"/v2/models/{served.container_name}/generate_stream"
    return {
        "direct": sse_way(served.triton_url, direct, {}),
        "mme-boto3": boto3_way(served.mme_url),
        "mme-http": event_stream_way(served.mme_url),
        "router": sse_way(served.router_url, "/v2/models/tokens/generate_stream", TENANT),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--streams", type=int, default=20, help="paced streams per way and turn")
    parser.add_argument("--tokens", type=int, default=16, help="tokens of a paced stream")
    parser.add_argument("--gap-ms", type=float, default=10.0, help="between paced tokens")
    parser.add_argument("--burst-streams", type=int, default=3)
    parser.add_argument("--burst-tokens", type=int, default=2000)
    parser.add_argument("--turn-seconds", type=float, default=30.0, help="per way and part")
    args = parser.parse_args()
    if min(args.turns, args.streams, args.burst_streams, args.burst_tokens) < 1 or args.tokens < 2:
        parser.error("every count must be at least 1, --tokens at least 2 (a gap between two)")
    print(
        f"# inference-component streaming, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="bench-ic-") as tmp, served(Path(tmp)) as servers:
        ways = ways_of(servers)
        warm = argparse.Namespace(**{**vars(args), "turns": 1, "streams": 2, "burst_streams": 1})
        for name, [turn] in take_turns(ways, warm, servers.groups).items():
            if failed := turn.paced.failures + turn.burst.failures:
                raise SystemExit(f"{name}: the warm-up failed: {failed[0]}")
        turns = take_turns(ways, args, servers.groups)
    found = {name: figures_of(turns[name]) for name in WAYS}
    results = report(found, args)
    print_verdicts(f"verdicts ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)", results)
    return 0 if all(v.met for v in results) else 3


if __name__ == "__main__":
    sys.exit(main())
