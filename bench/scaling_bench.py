"""Reaction time of the worker autoscaling, ``mode: queue`` vs ``mode: hpa``, on the real control plane.

Usage::

    .venv/bin/python bench/scaling_bench.py            # 2 rounds per mode, 48 images (~3.5 minutes)
    .venv/bin/python bench/scaling_bench.py --quick    # 1 round per mode, 24 images (smoke run)

It starts what the Kubernetes tests start (tests/helpers): the control plane on loopback (etcd,
kube-apiserver, kube-controller-manager with its real HPA controller, kube-scheduler), the kubelet
harness that runs worker pods as local processes, the chart installed with ``helm install`` (CRD,
RBAC, and a release serving the External metrics API through the aggregator), and the operator
as a process with that release's ServiceAccount token. The broker is the test RabbitMQ on
127.0.0.1:5672 (``FILTERJOB_TEST_BROKER_URL`` and ``FILTERJOB_TEST_MANAGEMENT_URL`` as for the
tests; loopback only). Rounds alternate (queue, hpa, queue, hpa, ...); each round is a fresh
namespace and FilterJob over the same inputs.

Per round, with the worker Deployment followed by a watch and the task queue sampled over AMQP:

- ``t_first``: from the backlog appearing (the task queue's ready count first > 0) to the first
  scale-up of the Deployment's ``spec.replicas`` above the mode's floor (queue: 0; hpa: 1, the
  replica the workers start with, since an HPA cannot go below one);
- ``t_ready``: from the backlog to ``status.readyReplicas == spec.replicas`` at the peak target;
- ``t_zero``: from the queue being empty (ready 0 and every output on disk: a worker acks right
  after its atomic write) to the replicas at the floor for good (negative: the autoscaler got
  there before the last image was done, the remaining depth asking for no more than the floor);
- ``t_end0``: from the queue being empty to replicas 0 (the operator's scale at the job's end).

KEDA's operator is not run (building it takes ~17 minutes and 3 GB here): keda mode is not measured.
Nothing is written to the repository; everything started is stopped on exit, Ctrl-C included (``--keep``
keeps the temporary directory with the logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.helpers: the harness the Kubernetes tests use

import aio_pika  # noqa: E402
import kubernetes.client  # noqa: E402
import kubernetes.watch  # noqa: E402
from tests.helpers import filterjobs  # noqa: E402
from tests.helpers.aggregation import Served, install_served_release, wait_available  # noqa: E402
from tests.helpers.brokerclean import delete_namespace_topology  # noqa: E402
from tests.helpers.brokers import BROKER_URL  # noqa: E402
from tests.helpers.controlplane import HPA_SYNC_SECONDS, Binaries, ControlPlane, ControlPlaneError, free_port  # noqa: E402
from tests.helpers.filterjobs import phase_is  # noqa: E402
from tests.helpers.kubelet import Kubelet  # noqa: E402
from tests.helpers.realcluster import (  # noqa: E402
    NODE,
    RELEASE,
    RELEASE_NAMESPACE,
    ClusterApi,
    FilterJobOperator,
    Kube,
    install_release,
)
from tests.helpers.watching import GONE, named, wait_for_list  # noqa: E402

from filterjob_operator.core.samples import make_image  # noqa: E402
from filterjob_worker.core.topology import Topology  # noqa: E402

MODES = ("queue", "hpa")
#: The issue's goal for queue mode: the first scale-up within this many seconds of the backlog.
GOAL_FIRST_SECONDS = 5.0
#: The controller-manager's default ``--horizontal-pod-autoscaler-sync-period``.
DEFAULT_HPA_SYNC_SECONDS = 15
#: KEDA's default ``pollingInterval``.
KEDA_POLLING_SECONDS = 30
#: How often the task queue and the destination are sampled (there is no watch of a queue).
SAMPLE_SECONDS = 0.05
#: Per image about half a second of one core here: a 2400x1800 JPEG through these filters.
IMAGE_SIZE = (2400, 1800)
FILTERS: list[dict[str, Any]] = [
    {"name": "blur", "radius": 4},
    {"name": "sharpen"},
    {"name": "grayscale"},
    {"name": "edges"},
]


@dataclasses.dataclass(frozen=True)
class Options:
    rounds: int
    images: int
    max_replicas: int
    per_replica: int
    status_interval: float
    scale_down_delay: int


@dataclasses.dataclass
class Timeline:
    """What one round saw, in ``time.monotonic()`` seconds."""

    #: (time, spec.replicas, status.readyReplicas) at each watch event of the Deployment.
    replicas: list[tuple[float, int, int]] = dataclasses.field(default_factory=list)
    backlog: float | None = None
    empty: float | None = None
    #: Why following the Deployment stopped early, if it did.
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Result:
    mode: str
    first: float
    #: None: the replicas came down before all of the peak's pods were ready.
    ready: float | None
    zero: float
    end0: float
    peak: int


class Interrupted(Exception):
    """SIGTERM, handled as Ctrl-C: everything started is stopped on the way out."""


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def follow_deployment(
    apps: kubernetes.client.AppsV1Api, namespace: str, name: str, seen: Timeline, stop: threading.Event
) -> None:
    """Record every state of the Deployment as its watch reports it, until ``stop`` is set."""
    version = ""
    while not stop.is_set():
        watch = kubernetes.watch.Watch()
        try:
            for event in watch.stream(
                apps.list_namespaced_deployment, namespace, resource_version=version, timeout_seconds=5, **named(name)
            ):
                item = event["object"]
                version = item.metadata.resource_version
                if event["type"] != "DELETED":
                    ready = (item.status.ready_replicas if item.status else None) or 0
                    seen.replicas.append((time.monotonic(), item.spec.replicas or 0, ready))
                if stop.is_set():
                    watch.stop()
        except kubernetes.client.ApiException as error:
            if error.status == GONE:
                version = ""  # expired: the next watch starts from the current state
                continue
            seen.error = f"the watch of the Deployment failed: {error.status} {error.reason}"
            return
        except Exception as error:  # the connection, e.g. the API server stopped by Ctrl-C
            if not stop.is_set():
                seen.error = f"the watch of the Deployment failed: {error}"
            return


def written(outputs: Path) -> int:
    """Outputs on disk (each written atomically: a temporary name, then renamed)."""
    return sum(1 for _ in outputs.rglob("*.jpg"))


async def sample_queue(queue: str, outputs: Path, images: int, seen: Timeline, stop: threading.Event) -> None:
    """The backlog's start (ready > 0) and the queue's end (ready 0, every output written)."""
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        while not stop.is_set():
            try:
                declared = await channel.declare_queue(queue, passive=True)
                ready = declared.declaration_result.message_count or 0
            except aio_pika.exceptions.ChannelNotFoundEntity:
                channel = await connection.channel()  # not declared yet: the failed check closed the channel
                ready = 0
            now = time.monotonic()
            if seen.backlog is None and ready > 0:
                seen.backlog = now
            if seen.backlog is not None and ready == 0 and written(outputs) >= images:
                seen.empty = now
                return
            await asyncio.sleep(SAMPLE_SECONDS)


def when(mode: str, what: str, states: list[tuple[float, int, int]], holds: Callable[[int, int], bool]) -> float:
    """The time of the first recorded state (replicas, ready) for which ``holds``."""
    for t, replicas, ready in states:
        if holds(replicas, ready):
            return t
    raise RuntimeError(f"{mode}: the Deployment never showed {what}; its states: {[s[1:] for s in states]}")


def settled(mode: str, states: list[tuple[float, int, int]], level: int) -> float:
    """When the replicas came down to ``level`` for good: after the last state above it (they may
    dip and rise again)."""
    above = [t for t, replicas, _ in states if replicas > level]
    later = [s for s in states if not above or s[0] > above[-1]]
    return when(mode, f"replicas {level} at the end", later, lambda replicas, _: replicas <= level)


def measure(mode: str, seen: Timeline) -> Result:
    """The round's figures from its timeline (see the module docstring).

    Times are as precise as the queue's sampling (``SAMPLE_SECONDS``): a scale-up that came within
    one sample of the first task shows as about 0, possibly a few milliseconds below.
    """
    if seen.error:
        raise RuntimeError(f"{mode}: {seen.error}")
    if seen.backlog is None or seen.empty is None:
        raise RuntimeError(f"{mode}: the round saw no backlog in the task queue, or never saw it empty")
    floor = 1 if mode == "hpa" else 0
    states = seen.replicas
    first = when(mode, f"replicas above {floor}", states, lambda replicas, _: replicas > floor)
    peak = max(replicas for _, replicas, _ in states)
    later = [s for s in states if s[0] >= first]
    ready = next((t - seen.backlog for t, replicas, up in later if replicas == up == peak), None)
    at_floor = settled(mode, states, floor)
    end0 = settled(mode, states, 0)
    return Result(mode, first - seen.backlog, ready, at_floor - seen.empty, end0 - seen.empty, peak)


def job_body(name: str, namespace: str, mode: str, src: Path, dst: Path, options: Options) -> dict[str, Any]:
    """The tests' FilterJob, with this benchmark's pipeline, JPEG outputs and scaling."""
    scaling = {
        "mode": mode,
        "minReplicas": 0,
        "maxReplicas": options.max_replicas,
        "messagesPerReplica": options.per_replica,
        "scaleDownDelaySeconds": options.scale_down_delay,
    }
    destination = {"uri": dst.as_uri() + "/", "format": "jpeg"}
    return filterjobs.job_body(name, namespace, src, dst, filters=FILTERS, destination=destination, autoscaling=scaling)


def sample(queue: str, outputs: Path, images: int, seen: Timeline, stop: threading.Event) -> None:
    """:func:`sample_queue` in a thread of its own, its failure kept for the round's report."""
    try:
        asyncio.run(sample_queue(queue, outputs, images, seen, stop))
    except Exception as error:  # the broker unreachable or gone: the round cannot be timed
        seen.error = f"sampling {queue} failed: {error!r}"


def one_round(api: ClusterApi, mode: str, src: Path, work: Path, options: Options) -> Result:
    """One FilterJob in a fresh namespace, from its creation to its workers at zero; then removed."""
    namespace = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
    kube = Kube(api, namespace)
    api.core.create_namespace({"metadata": {"name": namespace}})
    seen, stop = Timeline(), threading.Event()
    finished = False
    try:
        secret = {"metadata": {"name": "rabbitmq"}, "stringData": {"url": BROKER_URL}}
        api.core.create_namespaced_secret(namespace, secret)
        dst = work / namespace
        args = (api.apps, namespace, "scale-workers", seen, stop)
        threading.Thread(target=follow_deployment, args=args, daemon=True).start()
        job = kube.create_job(job_body("scale", namespace, mode, src, dst, options))
        queue = Topology.for_job(namespace=namespace, name="scale", uid=job["metadata"]["uid"]).tasks
        sampler = threading.Thread(target=sample, args=(queue, dst, options.images, seen, stop), daemon=True)
        sampler.start()
        state = kube.wait("filterjobs", "scale", phase_is("Succeeded", "Failed"), timeout=600)["status"]
        kube.wait("deployments", "scale-workers", lambda d: d["spec"]["replicas"] == 0, timeout=120)
        stop.set()
        sampler.join(timeout=10)
        if (state["phase"], state.get("succeeded")) != ("Succeeded", options.images):
            raise RuntimeError(f"{mode}: the job ended {state['phase']}, {state.get('succeeded')} images succeeded")
        finished = True
        return measure(mode, seen)
    finally:
        stop.set()
        if finished:  # the operator, still running, removes the job's queues and its finalizer
            with contextlib.suppress(kubernetes.client.ApiException):
                kube.delete_job("scale")
                kube.gone("filterjobs", "scale", timeout=60)
        with contextlib.suppress(kubernetes.client.ApiException):
            api.core.delete_namespace(namespace)
        delete_namespace_topology(namespace)  # whatever is left on the shared broker, interrupted or not


def make_inputs(directory: Path, count: int) -> Path:
    directory.mkdir(parents=True)
    for n in range(count):
        make_image(IMAGE_SIZE, seed=n).save(directory / f"img-{n:03d}.jpg", quality=90)
    return directory


def median(results: list[Result], field: str) -> float | None:
    """The median of the rounds that have the figure (a peak may never have been all ready)."""
    values = [v for r in results if (v := getattr(r, field)) is not None]
    return float(statistics.median(values)) if values else None


def seconds(value: float | None, width: int = 0) -> str:
    return f"{value:{width}.2f}" if value is not None else "n/a".rjust(width)


def report(results: list[Result], options: Options) -> None:
    print()
    print(
        f"{options.images} images of {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} ({', '.join(f['name'] for f in FILTERS)}), "
        f"maxReplicas {options.max_replicas}, messagesPerReplica {options.per_replica}, "
        f"scaleDownDelaySeconds {options.scale_down_delay}, operator status interval {options.status_interval:g} s"
    )
    print(
        f"HPA sync period used: {HPA_SYNC_SECONDS} s (the test control plane's); "
        f"the controller-manager's default is {DEFAULT_HPA_SYNC_SECONDS} s, which adds up to "
        f"{DEFAULT_HPA_SYNC_SECONDS - HPA_SYNC_SECONDS} s to each hpa reaction."
    )
    print(
        f"keda: not measured (KEDA's operator cannot be built or run here); with KEDA's defaults a reaction "
        f"waits up to pollingInterval {KEDA_POLLING_SECONDS} s + HPA sync {DEFAULT_HPA_SYNC_SECONDS} s "
        f"(the operator sets pollingInterval from its status interval)."
    )
    print()
    for result in results:
        print(
            f"  round {result.mode:5}  t_first {result.first:6.2f}  t_ready {seconds(result.ready, 6)}  "
            f"t_zero {result.zero:6.2f}  t_end0 {result.end0:6.2f}  peak {result.peak}"
        )
    print()
    fields = ("first", "ready", "zero", "end0")
    base = {f: median([r for r in results if r.mode == "queue"], f) for f in fields}
    print(
        "| mode | t_first (s) | t_ready (s) | t_zero (s) | t_end0 (s) | ratio to queue (first / ready / zero / end0) |"
    )
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        mine = [r for r in results if r.mode == mode]
        values = {f: median(mine, f) for f in fields}
        ratios = " / ".join(ratio(values[f], base[f]) for f in fields)
        floor = "1" if mode == "hpa" else "0"
        cells = " | ".join(seconds(values[f]) for f in fields)
        print(f"| {mode} (floor {floor}) | {cells} | {ratios} |")
    print("| keda | not measured | | | | |")
    if any(r.ready is None for r in results):
        print("(t_ready n/a: the replicas came down before every pod of the peak was ready)")
    worst = max(r.first for r in results if r.mode == "queue")
    print()
    print(
        f"queue mode's first scale-up within {GOAL_FIRST_SECONDS:g} s of the backlog: "
        f"{'met' if worst <= GOAL_FIRST_SECONDS else 'NOT met'} (median {seconds(base['first'])} s, "
        f"worst {worst:.2f} s)"
    )


def ratio(value: float | None, base: float | None) -> str:
    """``value / base``; "-" where either is missing or the base is not above 0 (within a sample of nothing)."""
    if value is None or base is None or base <= 0:
        return "-"
    return f"{value / base:.2f}"


@contextlib.contextmanager
def running_operator(
    plane: ControlPlane, served: Served, work: Path, options: Options
) -> Iterator[subprocess.Popen[bytes]]:
    """``filterjob operator`` as the served release's ServiceAccount, serving the External metrics API."""
    token = plane.token_for(served.release.namespace, served.release.service_account)
    kubeconfig = plane.write_kubeconfig(work / "operator.kubeconfig", token=token)
    operator = FilterJobOperator(plane, served.release, kubeconfig)
    env = {**served.env(), "FILTERJOB_STATUS_INTERVAL": str(options.status_interval), "FILTERJOB_METRICS_PORT": "0"}
    # A port of its own for the liveness endpoint (the last --liveness counts): kopf reads port 0 as 80,
    # which another run may hold.
    liveness = f"--liveness=http://127.0.0.1:{free_port()}/healthz"
    process = operator.spawn("--all-namespaces", liveness, log=work / "operator.log", env=env)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run(options: Options, work: Path) -> list[Result]:
    try:
        binaries = Binaries.ensure(build=False)
    except ControlPlaneError as error:
        sys.exit(f"scaling_bench: {error} (run scripts/ensure-k8s-binaries.sh)")
    print(f"inputs: {options.images} images of {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} ...", flush=True)
    src = make_inputs(work / "in", options.images)
    print("starting the control plane ...", flush=True)
    with contextlib.ExitStack() as stack:
        plane = stack.enter_context(ControlPlane.start(work / "control-plane", binaries=binaries))
        client = stack.enter_context(plane.api_client())
        api = ClusterApi.bind(client)
        install_release(plane, RELEASE, RELEASE_NAMESPACE, {}, work)  # the CRD and the operator's RBAC

        def established(found: list[Any]) -> bool:
            return any(c.type == "Established" and c.status == "True" for c in (found[0].status.conditions or []))

        crd = "filterjobs.filterjob.dev"
        wait_for_list(api.extensions.list_custom_resource_definition, established, what=crd, **named(crd))
        served = install_served_release(plane, api, "xm-bench", work)
        operator = stack.enter_context(running_operator(plane, served, work, options))
        try:
            wait_available(api, timeout=120)
        except AssertionError:
            if operator.poll() is None:
                raise
            raise RuntimeError(exited(operator, work)) from None
        node_client = stack.enter_context(plane.api_client())
        stack.enter_context(Kubelet(node_client, NODE, log_dir=work / "pods", restart_backoff=(0.2, 4.0)))
        results = []
        for n in range(options.rounds):
            for mode in MODES:
                print(f"round {n + 1}/{options.rounds}: {mode} ...", flush=True)
                if operator.poll() is not None:
                    raise RuntimeError(exited(operator, work)) from None
                results.append(one_round(api, mode, src, work, options))
        return results


def exited(operator: subprocess.Popen[bytes], work: Path, lines: int = 3) -> str:
    """Why the round cannot go on: the operator's exit and the end of its log."""
    log = work / "operator.log"
    tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
    return f"the operator exited ({operator.returncode}): {' | '.join(tail) or 'no output'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1 round per mode, 24 images (smoke run)")
    parser.add_argument("--rounds", type=int, help="rounds per mode (default 2; 1 with --quick)")
    parser.add_argument("--images", type=int, help="images per job (default 48; 24 with --quick)")
    parser.add_argument("--max-replicas", type=int, default=4)
    parser.add_argument("--messages-per-replica", type=int, default=4)
    parser.add_argument(
        "--status-interval", type=float, default=5.0, help="the operator's status interval, s (the chart's default 5)"
    )
    parser.add_argument("--scale-down-delay", type=int, default=0, help="scaleDownDelaySeconds of the jobs (default 0)")
    parser.add_argument("--tmp", type=Path, help="where the temporary directory goes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) afterwards")
    args = parser.parse_args()
    options = Options(
        rounds=args.rounds or (1 if args.quick else 2),
        images=args.images or (24 if args.quick else 48),
        max_replicas=args.max_replicas,
        per_replica=args.messages_per_replica,
        status_interval=args.status_interval,
        scale_down_delay=args.scale_down_delay,
    )
    if min(options.rounds, options.images, options.max_replicas, options.per_replica) < 1:
        parser.error("--rounds, --images, --max-replicas and --messages-per-replica must be at least 1")
    if options.status_interval <= 0 or options.scale_down_delay < 0:
        parser.error("--status-interval must be above 0 and --scale-down-delay at least 0")
    if not loopback(BROKER_URL):
        parser.error(f"the broker {redacted(BROKER_URL)} is not on loopback: this benchmark talks to loopback only")
    if math.ceil(options.images / options.per_replica) < options.max_replicas:
        print("note: the backlog asks for fewer than maxReplicas workers", file=sys.stderr)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    # Ctrl-C stops it even where it was started with SIGINT ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if problem := broker_problem():
        sys.exit(
            f"scaling_bench: the broker {redacted(BROKER_URL)} is not reachable ({problem}); "
            "start it (scripts/ensure-rabbitmq.sh) or set FILTERJOB_TEST_BROKER_URL"
        )
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="scaling-bench-", dir=args.tmp))
    try:
        results = run(options, work)
    except (KeyboardInterrupt, Interrupted):
        sys.exit("scaling_bench: interrupted; everything it started is stopped")
    except (RuntimeError, AssertionError, ControlPlaneError, kubernetes.client.ApiException) as error:
        args.keep = True
        sys.exit(f"scaling_bench: {error}\n(logs of the control plane, operator and pods kept in {work})")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(results, options)
    print(f"\n(total {time.monotonic() - started:.0f} s)" + (f"; logs kept in {work}" if args.keep else ""))


def broker_problem() -> str | None:
    """Why the broker cannot be reached, or None."""

    async def connect() -> None:
        connection = await aio_pika.connect(BROKER_URL, timeout=10)
        await connection.close()

    try:
        asyncio.run(connect())
    except Exception as error:
        return str(error) or type(error).__name__
    return None


def loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # another name: it could resolve anywhere
        return False


def redacted(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or "").geturl()


if __name__ == "__main__":
    main()
