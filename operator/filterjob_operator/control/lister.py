"""``filterjob list-inputs``: what a lister Job runs (see ``builders.lister``).

It reads the FilterJob from ``FILTERJOB_JOB``, lists the source as the operator
would (``sources.scan_inputs``) and replaces the job's listing in its
``<base>.inputs`` queue with the result, every message confirmed by the broker.

A source that cannot be listed (missing, a path that cannot be read, outputs that
would collide) is a fact about the job, not a failure of the lister: it publishes
the error, naming the paths at fault, which the operator turns into the job's
``Failed`` phase, and exits 0, so the Job does not retry what cannot change.
Anything else (the broker unreachable) exits non-zero, and the Job retries it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping

from filterjob_operator.adapters import sources
from filterjob_operator.adapters.broker.listings import Published, publish_run
from filterjob_operator.control.builders.lister import JOB_ENV
from filterjob_operator.core import listing
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import FilterJob, JobSpecError, parse_job

log = logging.getLogger("filterjob.lister")


def job_from_env(env: Mapping[str, str]) -> FilterJob:
    text = env.get(JOB_ENV)
    if not text:
        raise JobSpecError(f"{JOB_ENV} is not set (the FilterJob as JSON)")
    try:
        document = json.loads(text)
    except ValueError as e:
        raise JobSpecError(f"{JOB_ENV} is not JSON: {e}") from None
    job = parse_job(document)
    if not job.metadata.uid:
        raise JobSpecError(f"{JOB_ENV}: metadata.uid is required (it names the job's queues)")
    return job


def messages_of(job: FilterJob, *, run: str) -> tuple[list[bytes], int, str | None]:
    """The listing messages of the job's source: (messages, keys, error)."""
    try:
        inputs = sources.scan_inputs(job)
    except JobSpecError as e:
        error = "; ".join(e.problems)
        return [listing.encode_error(run, error)], 0, error
    skipped = [(u.path, u.reason) for u in inputs.skipped]
    return listing.encode(run, inputs.keys, skipped=skipped), len(inputs.keys), None


async def list_inputs(job: FilterJob, broker_url: str) -> Published:
    messages, keys, error = messages_of(job, run=uuid.uuid4().hex)
    topology = topology_of(job)
    who = f"filterjob lister {job.key}"
    return await publish_run(
        broker_url, topology, messages, queue_name=topology.inputs, keys=keys, error=error, who=who
    )
