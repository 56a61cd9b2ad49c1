"""What a job's destination holds at its end: checked by the operator or a verifier Job.

``filterjob verify-outputs`` is what a verifier Job runs (see ``builders.lister``): it
reads the FilterJob from ``FILTERJOB_JOB``, lists the destination once and replaces the
job's ``<base>.outputs`` queue with the keys it found (the listing format of
:mod:`listing`), every message confirmed by the broker. The operator intersects them with
the planned outputs (:mod:`verification`). A destination that cannot be listed completely
is reported as the listing's error and the command exits 0 (no retry changes it); the
operator ends the job ``Failed`` with it rather than guess. A broker that cannot be reached
exits non-zero, and the Job retries.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from filterjob_operator.adapters.broker.listings import Published, publish_run
from filterjob_operator.core import listing
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import FilterJob
from filterjob_worker.adapters import filelisting, storage
from filterjob_worker.core.errors import SpecError

log = logging.getLogger("filterjob.verifier")
#: Unreadable paths named in the error; the rest are counted.
SHOWN_UNLISTED = 5


@dataclass(frozen=True)
class Observed:
    """The output keys found at the destination, and why it could not be listed completely, if so
    (then a key missing from ``present`` may be in a directory that could not be read)."""

    present: frozenset[str] = field(default_factory=frozenset)
    problem: str | None = None


def observe(job: FilterJob) -> Observed:
    """One listing of the job's destination (no stat per output)."""
    uri = job.spec.destination.uri
    try:
        found = filelisting.list_objects(uri)
    except SpecError as e:
        return Observed(problem=f"spec.destination.uri: {'; '.join(e.problems)}")
    if found.unlisted:
        shown = "; ".join(str(u) for u in found.unlisted[:SHOWN_UNLISTED])
        more = len(found.unlisted) - SHOWN_UNLISTED
        return Observed(
            present=frozenset(found.keys),
            problem=f"the destination {uri} cannot be listed completely, so its outputs cannot be verified: "
            f"{shown}" + (f"; and {more} more" if more > 0 else ""),
        )
    return Observed(present=frozenset(found.keys))


def from_listing(found: listing.Listing) -> Observed:
    """What a verifier Job reported."""
    if found.error is not None:
        return Observed(problem=found.error)
    return Observed(present=frozenset(found.keys))


async def verify_outputs(job: FilterJob, broker_url: str) -> Published:
    run = uuid.uuid4().hex
    observed = observe(job)
    if observed.problem is not None:
        messages = [listing.encode_error(run, observed.problem)]
    else:
        messages = listing.encode(run, sorted(observed.present))
    topology = topology_of(job)
    who = f"filterjob verifier {job.key}"
    keys, error = len(observed.present), observed.problem
    return await publish_run(
        broker_url, topology, messages, queue_name=topology.outputs, keys=keys, error=error, who=who
    )


def visible(job: FilterJob) -> bool:
    """Whether this process sees the job's destination (its directory exists here)."""
    try:
        return storage.to_path(job.spec.destination.uri).is_dir()
    except (SpecError, OSError):
        return False
