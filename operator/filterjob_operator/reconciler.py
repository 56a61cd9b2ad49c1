"""The life of one FilterJob: validate, declare, enqueue, run and scale, finish.

Runs as a kopf daemon per FilterJob (see ``handlers``), so an operator restart
resumes every job: enqueueing continues from the cursor in ``status.enqueued``
and progress is read back from the broker, never from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from aio_pika.abc import AbstractRobustConnection

from filterjob_operator import brokerref, listing, sources, status, verification, verifier
from filterjob_operator.broker.depths import depths as queue_depths
from filterjob_operator.broker.enqueue import Cursor, publish_tasks
from filterjob_operator.broker.listings import ListingWatch, forget_listing, stored_listing
from filterjob_operator.broker.management import Management, vhost_of
from filterjob_operator.broker.parked import parked_failures, redrive
from filterjob_operator.builders import deployment, hpa, lister
from filterjob_operator.builders.common import lister_name, verifier_name, workers_name
from filterjob_operator.kube import Kube, KubeError
from filterjob_operator.metrics import OperatorMetrics
from filterjob_operator.settings import Settings
from filterjob_operator.spec import GROUP, FilterJob, JobSpecError, parse_job
from filterjob_operator.workerenv import topology_of
from filterjob_worker import storage
from filterjob_worker.topology import declare

log = logging.getLogger("filterjob.operator")
#: Persist the enqueue cursor at least this often (seconds), besides once per batch.
CURSOR_SECONDS = 2.0
RECENT_FAILURES = 20
#: Failed reasons that a re-drive answers by listing the source again.
LISTING_FAILURES = ("InvalidSource", "ListerFailed")
#: A finished job checks for a re-drive request or its TTL every this many status intervals.
FINISHED_CHECKS = 6
#: Changing this annotation's value asks the operator to move the job's parked tasks back
#: to its task queue (and, if the job has finished, to run it again).
REDRIVE_ANNOTATION = f"{GROUP}/redrive"
#: The ``Ready`` reason of a job whose lister Job's pod has not started (see ``status.lister_not_started``).
LISTER_NOT_STARTED = "ListerNotStarted"
#: A job whose broker (or its Secret) cannot be used tries again after this many status intervals.
BROKER_RETRY_INTERVALS = 2


async def pause(stopped: kopf.DaemonStopped, seconds: float) -> bool:
    """Wait up to ``seconds`` or until the daemon is asked to stop; True if it was.

    Not ``await stopped.wait(seconds)``: kopf runs that wait as a task of its own which ends in
    ``TimeoutError`` when the time is up, and at its exit kopf re-raises the error of every task it
    finds finished, so a pause that ran out while the operator stopped crashed the operator's exit.
    Here the pause ends by cancelling that task, an ending kopf lets pass.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopped.wait()
    return bool(stopped)


class ListerFailed(Exception):
    """The lister Job gave up (its retries spent) without reporting a listing."""


@dataclass
class Services:
    settings: Settings
    kube: Kube
    metrics: OperatorMetrics
    broker_urls: brokerref.RememberedUrls = field(default_factory=brokerref.RememberedUrls)


class Reconciler:
    def __init__(self, services: Services, body: kopf.Body, stopped: kopf.DaemonStopped) -> None:
        self.s = services
        self.body = body
        self.stopped = stopped
        self.namespace = str(body.metadata.namespace)
        self.name = str(body.metadata.name)
        self.generation = body.metadata.get("generation")
        #: What the listing found (skipped paths, an empty source), kept in every status patch.
        self.source_conditions: list[dict[str, Any]] = []
        #: The inputs were listed by this process now, not taken from the job's stored listing.
        self.listed_here = False

    @property
    def observed(self) -> Mapping[str, Any]:
        return self.body.get("status") or {}

    async def patch(self, **fields: Any) -> None:
        await self.s.kube.patch_status(self.namespace, self.name, fields)

    async def fail(self, reason: str, message: str) -> None:
        log.warning("job %s/%s failed: %s", self.namespace, self.name, message)
        kopf.warn(self.body, reason=reason, message=message)
        await self.patch(
            phase=status.FAILED,
            completionTime=status.now_iso(),
            observedGeneration=self.generation,
            conditions=[
                status.condition("Ready", False, reason, message, generation=self.generation, previous=[]),
                status.condition("Failed", True, reason, message, generation=self.generation, previous=[]),
            ],
        )

    async def run(self) -> None:
        """Run the job to its end, then wait there for its TTL or a re-drive request, until stopped."""
        finished = self.observed.get("phase") in status.FINISHED
        while not self.stopped:
            if finished and not await self._finished():
                return
            finished = await self._attempt()
            if not finished:
                return

    async def _attempt(self) -> bool:
        """Validate, connect and run; True once the job has a final phase, False if stopped first."""
        try:
            job = parse_job(dict(self.body))
        except JobSpecError as e:
            await self.fail("InvalidSpec", "; ".join(e.problems))
            return True
        url, management_url = await self._broker(job)
        connection = await self._connect(job, url)
        try:
            async with Management(management_url, vhost=vhost_of(url)) as management:
                return await self._run(job, connection, management)
        finally:
            await connection.close()

    def _redrive_request(self) -> str | None:
        """A value of the re-drive annotation not acted on yet, if any."""
        value = (self.body.metadata.annotations or {}).get(REDRIVE_ANNOTATION)
        return None if value is None or value == self.observed.get("redriven") else str(value)

    async def _redrive(
        self, job: FilterJob, connection: AbstractRobustConnection, request: str, **status_fields: Any
    ) -> int:
        moved = await redrive(connection, topology_of(job))
        message = f"{len(moved)} parked tasks moved back to the task queue ({REDRIVE_ANNOTATION}={request})"
        log.info("job %s/%s: %s", self.namespace, self.name, message)
        kopf.info(self.body, reason="Redriven", message=message)
        await self.patch(redriven=request, **status_fields)  # in one patch: no status says "re-driven" but "done"
        return len(moved)

    def _failed_listing(self) -> bool:
        """The job ended Failed because its inputs could not be listed."""
        return any(
            c.get("type") == "Failed" and c.get("status") == "True" and c.get("reason") in LISTING_FAILURES
            for c in self.observed.get("conditions") or []
        )

    async def _finished(self) -> bool:
        """Wait, finished: False once deleted by its TTL or stopped, True when re-driven (run it again).

        The body is kopf's live view, so the annotation is seen without asking the API.
        """
        refused: str | None = None  # until kopf's view of the status shows it acted on
        while not self.stopped:
            if (request := self._redrive_request()) is not None and request != refused:
                try:
                    job = parse_job(dict(self.body))
                except JobSpecError as e:
                    # Acted on (refused) once, with the reason: a new value asks again after the fix.
                    refused = request
                    message = (
                        f"{REDRIVE_ANNOTATION}={request} not acted on: the spec is invalid: {'; '.join(e.problems)};"
                        f" fix the spec, then set {REDRIVE_ANNOTATION} to a new value"
                    )
                    log.warning("job %s/%s: %s", self.namespace, self.name, message)
                    kopf.warn(self.body, reason="RedriveRefused", message=message)
                    await self.patch(redriven=request)
                    continue
                url, _ = await self._broker(job)
                connection = await self._connect(job, url)
                try:
                    if self._failed_listing():
                        # The source was the problem; once fixed, it must be listed again.
                        await forget_listing(connection, topology_of(job))
                        await self.s.kube.delete_batch_job(self.namespace, lister_name(job))
                    await self._redrive(job, connection, request, phase=status.RUNNING, completionTime=None)
                finally:
                    await connection.close()
                return True
            if await self._expired():
                return False
            # Finished jobs pile up; looking at their (in-memory) body less often costs a
            # re-drive or a TTL at most this much delay.
            await pause(self.stopped, FINISHED_CHECKS * self.s.settings.status_interval)
        return False

    async def _broker(self, job: FilterJob) -> tuple[str, str]:
        """The broker's URLs from the job's Secret; raises ``kopf.TemporaryError`` (a retry) if unusable."""
        try:
            return await self.s.broker_urls.read(self.s.kube, self.namespace, self._broker_secret(job))
        except brokerref.BrokerUnavailable as e:
            raise await self._unavailable(e) from None

    async def _connect(self, job: FilterJob, url: str) -> AbstractRobustConnection:
        try:
            return await brokerref.connect(url, secret=self._broker_secret(job), name=f"filterjob {job.key}")
        except brokerref.BrokerUnavailable as e:
            raise await self._unavailable(e) from None

    async def _unavailable(self, error: brokerref.BrokerUnavailable) -> kopf.TemporaryError:
        """Say in the status why the job cannot go on; the error to retry with (the Secret or broker may come)."""
        previous = list(self.observed.get("conditions") or [])
        ready: dict[str, Any] = next((c for c in previous if c.get("type") == "Ready"), {})
        if (ready.get("reason"), ready.get("message")) != (error.reason, error.message):
            log.warning("job %s/%s: %s", self.namespace, self.name, error.message)
            kopf.warn(self.body, reason=error.reason, message=error.message)
        await self.patch(
            # A job that never started waits in Pending; one that did keeps its phase (its work is queued).
            phase=self.observed.get("phase") or status.PENDING,
            observedGeneration=self.generation,
            conditions=[
                *(c for c in previous if c.get("type") != "Ready"),
                status.condition(
                    "Ready", False, error.reason, error.message, generation=self.generation, previous=previous
                ),
            ],
        )
        return kopf.TemporaryError(error.message, delay=BROKER_RETRY_INTERVALS * self.s.settings.status_interval)

    async def _run(self, job: FilterJob, connection: AbstractRobustConnection, management: Management) -> bool:
        topology = topology_of(job)
        channel = await connection.channel(publisher_confirms=True)
        await declare(channel, topology)
        if self.observed.get("queues") != topology.base:
            # So users find the job's queues (filterjob parked), and its finalizer knows they exist.
            await self.patch(queues=topology.base)
        try:
            listed = await self._list(job, connection)
        except JobSpecError as e:
            await self.fail("InvalidSource", "; ".join(e.problems))
            return True
        except ListerFailed as e:
            await self.fail("ListerFailed", str(e))
            return True
        if listed is None:
            return False  # stopped while waiting for the lister Job
        keys = listed.keys
        self.source_conditions = self._report_source(job, listed)
        already, remaining = status.resume(
            keys, enqueued=int(self.observed.get("enqueued") or 0), through=self.observed.get("enqueuedThrough")
        )
        total = already + len(remaining)
        resumed = not remaining
        await self.patch(
            total=total,
            skipped=len(listed.skipped),
            skippedPaths=[{"path": u.path, "reason": u.reason} for u in listed.skipped[: status.SHOWN_SKIPPED]],
            conditions=[*self._listed(self._conditions_besides_source(), total), *self.source_conditions],
            phase=status.SUSPENDED if job.spec.suspend else (status.RUNNING if resumed else status.ENQUEUING),
            startTime=self.observed.get("startTime") or status.now_iso(),
            observedGeneration=self.generation,
        )
        await self._ensure_workers(job, replicas=0)
        if not await self._enqueue(job, channel, remaining, already=already):
            return False  # stopped while enqueueing; the next daemon run resumes from the cursor
        # Which inputs surely are the job's tasks: all of them, unless an earlier run enqueued part
        # of a listing that is gone (a source changed meanwhile: see ``status.resume``).
        sure = None if already == 0 or not self.listed_here else set(remaining)
        return await self._follow(job, connection, channel, management, total=total, keys=keys, sure=sure)

    def _report_source(self, job: FilterJob, listed: sources.Inputs) -> list[dict[str, Any]]:
        """Events and conditions for what the listing found: skipped paths, an empty source."""
        previous = list(self.observed.get("conditions") or [])
        found = status.source_conditions(
            skipped=[str(u) for u in listed.skipped],
            empty=sources.empty_message(job) if not listed.keys else None,
            generation=self.generation,
            previous=previous,
        )
        for c in found:
            log.warning("job %s/%s: %s", self.namespace, self.name, c["message"])
            kopf.warn(self.body, reason=c["reason"], message=c["message"])
        return found

    def _listed(self, conditions: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
        """The conditions once listed: no longer waiting for the lister (nor for its pod to start)."""
        return [
            status.condition(
                "Ready", False, "Listed", f"{total} inputs listed", generation=self.generation, previous=conditions
            )
            if c.get("type") == "Ready" and c.get("reason") in ("Listing", LISTER_NOT_STARTED)
            else c
            for c in conditions
        ]

    def _conditions_besides_source(self) -> list[dict[str, Any]]:
        return [c for c in self.observed.get("conditions") or [] if c.get("type") not in status.SOURCE_CONDITIONS]

    def _broker_secret(self, job: FilterJob) -> str:
        return job.spec.broker.secret_ref.name if job.spec.broker else self.s.settings.broker_secret

    async def _list(self, job: FilterJob, connection: AbstractRobustConnection) -> sources.Inputs | None:
        """The job's inputs, sorted; None if stopped first. Raises ``JobSpecError`` for a bad source.

        A listing stored in the broker by a lister Job is the job's for good: a restarted
        operator takes it again rather than listing anew. Without one, the operator lists a
        source it can see itself (``FILTERJOB_LIST_INPUTS``: ``auto`` or ``operator``),
        and otherwise runs a lister Job next to the workers and waits for its listing.
        """
        stored = await stored_listing(connection, topology_of(job))
        if stored is not None:
            return _keys(stored)
        mode = self.s.settings.list_inputs
        if mode == "operator" or (mode == "auto" and await asyncio.to_thread(sources.visible, job)):
            self.listed_here = True
            return await asyncio.to_thread(sources.scan_inputs, job)
        return await self._run_lister(job, connection)

    async def _run_lister(self, job: FilterJob, connection: AbstractRobustConnection) -> sources.Inputs | None:
        name = lister_name(job)
        if job.spec.suspend:  # a suspended job runs no pods, not even its lister
            await self.patch(phase=status.SUSPENDED, observedGeneration=self.generation)
            if not await self._wait_unsuspended():
                return None
        message = f"waiting for the lister Job {name} to list {job.spec.source.uri}"
        await self.patch(
            phase=status.PENDING,
            observedGeneration=self.generation,
            conditions=[
                status.condition(
                    "Ready",
                    False,
                    "Listing",
                    message,
                    generation=self.generation,
                    previous=list(self.observed.get("conditions") or []),
                )
            ],
        )
        manifest = lister.build(job, settings=self.s.settings, broker_secret=self._broker_secret(job))
        if await self.s.kube.create_job(manifest):
            log.info("job %s/%s: created the lister Job %s", self.namespace, self.name, name)
            kopf.info(self.body, reason="Listing", message=f"created the lister Job {name}")
        interval = self.s.settings.status_interval
        not_started: str | None = None
        async with ListingWatch(connection, topology_of(job)) as watch:
            while not self.stopped:
                failure = await self.s.kube.job_failure(self.namespace, name)
                # After a failure, one more interval for a listing on its way from an earlier attempt.
                if (found := await watch.next(interval)) is not None:
                    return _keys(found)
                if failure is not None:
                    waited = f" (its pod never started: {not_started})" if not_started else ""
                    raise ListerFailed(f"the lister Job {name} failed without a listing: {failure}{waited}")
                # After an interval without a listing: the pod had its time to appear and start.
                not_started = await self._lister_not_started(name, message, not_started)
        return None

    async def _lister_not_started(self, name: str, listing: str, previous: str | None) -> str | None:
        """Say in the ``Ready`` condition why the lister's pod has not started, if it is stuck; the reason.

        The Job's deadline ends the wait; until then, the user sees why (an image that cannot be
        pulled, a missing Secret, no node that fits) without looking at pods. Back to ``Listing``
        once the pod starts.
        """
        try:
            pods = await self.s.kube.job_pods(self.namespace, name)
        except KubeError as e:  # a diagnosis only: the Job's deadline still ends the wait
            log.warning("job %s/%s: cannot read the pods of the lister Job %s: %s", self.namespace, self.name, name, e)
            return previous
        why = status.lister_not_started(pods, previous=previous, now=datetime.now(UTC))
        if why == previous:
            return why
        if why is None:
            reason, message = "Listing", listing
        else:
            reason = LISTER_NOT_STARTED
            message = (
                f"the lister Job {name} has not started: {why}; it fails"
                f" {self.s.settings.lister_deadline}s after it began (FILTERJOB_LISTER_DEADLINE)"
            )
            if previous is None:  # once: a pull that keeps failing alternates ErrImagePull and ImagePullBackOff
                log.warning("job %s/%s: %s", self.namespace, self.name, message)
                kopf.warn(self.body, reason=reason, message=message)
        previous_conditions = list(self.observed.get("conditions") or [])
        await self.patch(
            conditions=[
                *(c for c in previous_conditions if c.get("type") != "Ready"),
                status.condition(
                    "Ready", False, reason, message, generation=self.generation, previous=previous_conditions
                ),
            ]
        )
        return why

    async def _ensure_workers(self, job: FilterJob, *, replicas: int) -> None:
        secret = self._broker_secret(job)
        manifest = deployment.build(job, settings=self.s.settings, replicas=replicas, broker_secret=secret)
        await self.s.kube.apply_deployment(manifest, keep_replicas=True)
        if job.spec.autoscaling.mode == "hpa":
            await self.s.kube.apply_hpa(hpa.build(job))

    async def _wait_unsuspended(self) -> bool:
        while (self.body.get("spec") or {}).get("suspend"):
            if await pause(self.stopped, self.s.settings.status_interval):
                return False
        return True

    async def _enqueue(self, job: FilterJob, channel: Any, keys: Sequence[str], *, already: int) -> bool:
        """Publish tasks from the persisted cursor on; False if stopped first.

        The cursor moves only past tasks the broker confirmed, so a restart never skips one.
        Publishing and saving the cursor cannot be one atomic step (they go to two systems),
        so an operator killed between a batch's confirmation and its save publishes that batch
        again when it resumes: at most ``enqueue_batch`` tasks run twice. That is harmless by
        design (outputs are rewritten atomically with the same bytes, failures are counted per
        distinct task in ``_finish``), and the batch size bounds it. A graceful stop saves the
        cursor before returning, so it duplicates nothing.
        """
        batch = self.s.settings.enqueue_batch
        cursor = Cursor()  # into keys
        saved = (0, time.monotonic())

        async def save(force: bool = False) -> None:
            nonlocal saved
            count, when = saved
            done = cursor.position
            if done == count and not force:
                return
            if force or done - count >= batch or time.monotonic() - when >= CURSOR_SECONDS:
                through = {"enqueuedThrough": keys[done - 1]} if done else {}
                await self.patch(enqueued=already + done, **through)
                saved = (done, time.monotonic())

        topology = topology_of(job)
        while cursor.position < len(keys):
            if not await self._wait_unsuspended():
                return False
            if self.stopped:
                await save(force=True)
                return False
            chunk = keys[cursor.position : cursor.position + batch]
            await publish_tasks(channel, topology, sources.plan(job, chunk), cursor=cursor)
            await save()
        await save(force=True)
        kopf.info(self.body, reason="Enqueued", message=f"{already + len(keys)} tasks enqueued")
        return True

    async def _follow(
        self,
        job: FilterJob,
        connection: AbstractRobustConnection,
        channel: Any,
        management: Management,
        *,
        total: int,
        keys: Sequence[str],
        sure: Collection[str] | None,
    ) -> bool:
        """Status and scaling until the job is done (True) or the daemon stops (False)."""
        topology = topology_of(job)
        scaling = job.spec.autoscaling
        below_since: float | None = None
        empty_since: float | None = None
        while True:
            depths = await queue_depths(channel, topology, management, enqueued=total)
            result = status.counts(total=total, enqueued=total, depths=depths)
            now = time.monotonic()
            empty_since = status.drained_since(enqueued_all=True, depths=depths, now=now, since=empty_since)
            done = status.is_done(since=empty_since, now=now)
            suspended = bool((self.body.get("spec") or {}).get("suspend"))
            self.s.metrics.queue_messages.labels(self.namespace, self.name).set(depths.outstanding)
            workers = await self.s.kube.workers(self.namespace, workers_name(job))
            current = workers.desired if workers else 0
            replicas = current
            if scaling.mode != "hpa":
                if suspended:
                    replicas = 0
                elif scaling.mode == "none":
                    replicas = 0 if done else max(1, scaling.min_replicas)
                else:
                    desired = status.desired_replicas(
                        depths=depths,
                        per_replica=scaling.messages_per_replica,
                        minimum=scaling.min_replicas,
                        maximum=scaling.max_replicas,
                        finished=done,
                    )
                    replicas, below_since = status.next_replicas(
                        current=current,
                        desired=desired,
                        now=time.monotonic(),
                        below_since=below_since,
                        delay=0 if done else scaling.scale_down_delay_seconds,
                    )
                if replicas != current:
                    await self.s.kube.scale(self.namespace, workers_name(job), replicas)
            self.s.metrics.desired_replicas.labels(self.namespace, self.name).set(replicas)
            ready = workers.ready if workers else 0
            if (request := self._redrive_request()) is not None and await self._redrive(job, connection, request):
                empty_since = None  # the tasks just moved are outstanding again
                continue
            if done:
                return await self._finish(job, connection, result, keys, sure=sure)
            phase = status.SUSPENDED if suspended else status.RUNNING
            previous = list(self.observed.get("conditions") or [])
            await self.patch(
                **result.as_status(),
                phase=phase,
                observedGeneration=self.generation,
                workers={"desired": replicas, "ready": ready, "summary": f"{ready}/{replicas}"},
                conditions=[
                    status.condition(
                        "Ready",
                        not suspended,
                        "Suspended" if suspended else "Processing",
                        f"{result.succeeded + result.failed} of {total} tasks done",
                        generation=self.generation,
                        previous=previous,
                    ),
                    *self.source_conditions,
                ],
            )
            if await pause(self.stopped, self.s.settings.status_interval):
                return False

    async def _finish(
        self,
        job: FilterJob,
        connection: AbstractRobustConnection,
        result: status.Counts,
        keys: Sequence[str],
        *,
        sure: Collection[str] | None,
    ) -> bool:
        """End the job with counts observed at its destination; False if stopped first.

        The derived ``result`` says the queues are empty; what the destination holds says what
        succeeded: a task purged from its queue, or an output deleted after it was written,
        is no success (see ``verification``). ``sure``: the keys known to be tasks of the job
        (None: all of ``keys``); only those are named lost, the others are counted.
        """
        if job.spec.autoscaling.mode == "hpa":
            # An HPA keeps one replica at least; with nothing left to do, the job takes its
            # workers back (a re-drive applies the HPA again).
            await self.s.kube.delete_hpa(self.namespace, workers_name(job))
            await self.s.kube.scale(self.namespace, workers_name(job), 0)
        parked = await parked_failures(connection, topology_of(job))
        observed = await self._observe_outputs(job, connection, planned=bool(keys))
        if observed is None:
            return False
        if observed.problem is not None:
            await self.fail("VerificationFailed", observed.problem)
            self.s.metrics.forget(self.namespace, self.name)
            return True
        plan = verification.planned(job, keys)
        verified = verification.verify(plan, present=observed.present, failed={p.task for p in parked})
        counted = verification.final(verified, total=result.total, parked=len(parked), sure=sure)
        final = status.Counts(
            total=result.total,
            enqueued=result.enqueued,
            succeeded=counted.succeeded,
            failed=counted.failed,
            retrying=0,
            queued=0,
            in_flight=0,
        )
        phase = status.final_phase(final, max_failed_ratio=job.spec.max_failed_ratio)
        message = f"{final.succeeded} succeeded, {final.failed} failed of {final.total}"
        if counted.lost:
            shown = [t.input for t in counted.named[:5]]
            if counted.lost > len(shown):  # more than shown, or some not known by name (a source changed)
                shown.append("…")
            message += f" ({counted.lost} {verification.LOST}: {', '.join(shown)})"
        # The lost first: nothing else tells of them, while the parked queue keeps every parked task.
        failures = [{"key": t.input, "reason": verification.LOST} for t in counted.named]
        # Named by input key, as the lost are (a task id tells a user nothing; a malformed task has no key).
        inputs = {t.task: t.input for t in plan}
        failures += [{"key": inputs.get(p.task, p.task), "reason": p.reason} for p in parked]
        previous = list(self.observed.get("conditions") or [])
        await self.patch(
            **final.as_status(),
            phase=phase,
            completionTime=status.now_iso(),
            observedGeneration=self.generation,
            workers={"desired": 0, "ready": 0, "summary": "0/0"},
            recentFailures=failures[:RECENT_FAILURES],
            conditions=[
                status.condition("Ready", False, "Finished", message, generation=self.generation, previous=previous),
                status.condition(
                    "Complete", phase == status.SUCCEEDED, phase, message, generation=self.generation, previous=previous
                ),
                status.condition(
                    "Failed", phase == status.FAILED, phase, message, generation=self.generation, previous=previous
                ),
                *self.source_conditions,
            ],
        )
        if phase == status.SUCCEEDED:
            kopf.info(self.body, reason="Succeeded", message=message)
        else:
            kopf.warn(
                self.body, reason="Failed", message=f"{message}: above maxFailedRatio {job.spec.max_failed_ratio}"
            )
        self.s.metrics.forget(self.namespace, self.name)
        return True

    async def _observe_outputs(
        self, job: FilterJob, connection: AbstractRobustConnection, *, planned: bool
    ) -> verifier.Observed | None:
        """What the destination holds: listed here if the operator sees it (as for the source),
        else by a verifier Job next to the workers; None if stopped first."""
        if not planned:
            return verifier.Observed()  # nothing to look for
        # Even with FILTERJOB_LIST_INPUTS=operator: an operator that sees the source need not
        # see the destination, and a destination it cannot see is no proof that nothing is there.
        if self.s.settings.list_inputs != "job" and await asyncio.to_thread(verifier.visible, job):
            return await asyncio.to_thread(verifier.observe, job)
        return await self._run_verifier(job, connection)

    async def _run_verifier(self, job: FilterJob, connection: AbstractRobustConnection) -> verifier.Observed | None:
        name = verifier_name(job)
        topology = topology_of(job)
        interval = self.s.settings.status_interval
        # From nothing: no report or Job of an earlier verification (before a re-drive) answers for this one.
        await forget_listing(connection, topology, queue_name=topology.outputs)
        await self.s.kube.delete_batch_job(self.namespace, name)
        manifest = lister.build_verifier(job, settings=self.s.settings, broker_secret=self._broker_secret(job))
        if not await self.s.kube.create_job(manifest):
            raise kopf.TemporaryError(
                f"the verifier Job {name} of an earlier check is still being deleted", delay=interval
            )
        message = f"created the verifier Job {name} to check the outputs at {job.spec.destination.uri}"
        log.info("job %s/%s: %s", self.namespace, self.name, message)
        kopf.info(self.body, reason="Verifying", message=message)
        async with ListingWatch(connection, topology, queue_name=topology.outputs) as watch:
            while not self.stopped:
                failure = await self.s.kube.job_failure(self.namespace, name)
                # After a failure, one more interval for a report on its way from an earlier attempt.
                if (found := await watch.next(interval)) is not None:
                    return verifier.from_listing(found)
                if failure is not None:
                    return verifier.Observed(
                        problem=f"the verifier Job {name} failed without a report, so the outputs at"
                        f" {job.spec.destination.uri} cannot be verified: {failure}"
                    )
        return None

    async def _expired(self) -> bool:
        """Delete the job once ``ttlSecondsAfterFinished`` has passed since it finished; True if deleted."""
        ttl = (self.body.get("spec") or {}).get("ttlSecondsAfterFinished")
        finished = self.observed.get("completionTime")
        # From completionTime, so an operator restart does not restart the clock.
        if ttl is None or (finished and status.seconds_since(finished) < float(ttl)):
            return False
        if not finished:  # just finished; the status carrying completionTime is on its way
            return False
        log.info("deleting %s/%s: ttlSecondsAfterFinished passed", self.namespace, self.name)
        await self.s.kube.delete_job(self.namespace, self.name)
        return True


def _keys(found: listing.Listing) -> sources.Inputs:
    """The inputs of a lister's listing, or its error as the job's."""
    if found.error is not None:
        raise JobSpecError(found.error)
    skipped = [storage.Unlisted(path=path, reason=reason) for path, reason in found.skipped]
    return sources.Inputs(keys=sorted(found.keys), skipped=skipped)
