"""Why the lister Job's pod has not started."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from filterjob_operator.core import podstart

NOW = datetime(2026, 1, 1, 0, 2, tzinfo=UTC)


def pod(name: str, created: str, **status_: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"phase": "Pending", **status_}}


def waiting(reason: str, message: str | None = None, restarts: int = 0) -> dict[str, Any]:
    state = {"reason": reason, **({"message": message} if message else {})}
    return {"name": "lister", "restartCount": restarts, "state": {"waiting": state}}


PULL = waiting("ImagePullBackOff", 'Back-off pulling image "registry.example/nope:1"')
UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/1 nodes are available: 1 Insufficient memory.",
}


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([], None),  # no pod yet: nothing to say
        ([pod("p", "2026-01-01T00:01:50Z", containerStatuses=[waiting("ContainerCreating")])], None),  # on its way
        ([pod("p", "2026-01-01T00:01:50Z")], None),  # not scheduled yet, nor refused
        (
            [pod("p", "2026-01-01T00:01:50Z", containerStatuses=[PULL])],
            'pod p: ImagePullBackOff: Back-off pulling image "registry.example/nope:1"',
        ),
        (
            [
                pod(
                    "p",
                    "2026-01-01T00:01:50Z",
                    containerStatuses=[waiting("CreateContainerConfigError", 'secret "rabbit" not found')],
                )
            ],
            'pod p: CreateContainerConfigError: secret "rabbit" not found',
        ),
        ([pod("p", "2026-01-01T00:01:50Z", containerStatuses=[waiting("ErrImagePull")])], "pod p: ErrImagePull"),
        (
            [pod("p", "2026-01-01T00:01:50Z", conditions=[UNSCHEDULABLE])],
            f"pod p: Unschedulable: {UNSCHEDULABLE['message']}",
        ),
        # An init container stuck first.
        (
            [
                pod(
                    "p",
                    "2026-01-01T00:01:50Z",
                    initContainerStatuses=[PULL],
                    containerStatuses=[waiting("PodInitializing")],
                )
            ],
            'pod p: ImagePullBackOff: Back-off pulling image "registry.example/nope:1"',
        ),
        # The newest pod speaks.
        (
            [
                pod("old", "2026-01-01T00:00:00Z", containerStatuses=[PULL]),
                pod("new", "2026-01-01T00:01:00Z", containerStatuses=[waiting("ErrImagePull")]),
            ],
            "pod new: ErrImagePull",
        ),
        # Started: running, or restarted after a crash (the Job's retries handle that), or done.
        (
            [
                pod(
                    "p",
                    "2026-01-01T00:01:50Z",
                    containerStatuses=[waiting("CrashLoopBackOff", "back-off 10s", restarts=2)],
                )
            ],
            None,
        ),
        (
            [
                pod(
                    "p",
                    "2026-01-01T00:01:50Z",
                    containerStatuses=[{"name": "lister", "restartCount": 0, "state": {"running": {}}}],
                )
            ],
            None,
        ),
        (
            [
                pod("a", "2026-01-01T00:01:50Z", containerStatuses=[PULL]),
                {**pod("b", "2026-01-01T00:01:51Z"), "status": {"phase": "Running"}},
            ],
            None,
        ),
    ],
)
def test_why_the_lister_pod_has_not_started(pods: list[dict[str, Any]], expected: str | None) -> None:
    assert podstart.lister_not_started(pods, previous=None, now=NOW) == expected


def test_the_last_reason_stands_while_no_pod_says_otherwise() -> None:
    """At the deadline the Job controller deletes the stuck pod: the reason seen before stays,
    for the failure's message."""
    before = "pod p: ImagePullBackOff"
    deleted = pod(
        "p", "2026-01-01T00:01:50Z", containerStatuses=[{"name": "lister", "state": {"terminated": {"exitCode": 137}}}]
    )
    deleted["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:51Z"
    assert podstart.lister_not_started([deleted], previous=before, now=NOW) == before
    assert podstart.lister_not_started([], previous=before, now=NOW) == before
    assert podstart.lister_not_started(
        [pod("q", "2026-01-01T00:01:52Z", containerStatuses=[PULL])], previous=before, now=NOW
    ).startswith("pod q:")
    running = {**pod("q", "2026-01-01T00:01:52Z"), "status": {"phase": "Running"}}
    assert podstart.lister_not_started([running], previous=before, now=NOW) is None


def test_a_container_created_for_too_long_counts_as_stuck() -> None:
    """A volume that cannot be mounted keeps the container in ContainerCreating, with no reason of its own."""
    creating = pod("p", "2026-01-01T00:00:30Z", containerStatuses=[waiting("ContainerCreating")])
    assert podstart.lister_not_started([creating], previous=None, now=NOW, patience=120) is None
    # As the kubernetes client renders the timestamp (isoformat), and one that is no timestamp.
    rendered = {**creating, "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:30+00:00"}}
    assert podstart.lister_not_started([rendered], previous=None, now=NOW, patience=60) is not None
    unknown = {**creating, "metadata": {"name": "p", "creationTimestamp": "soon"}}
    assert podstart.lister_not_started([unknown], previous=None, now=NOW, patience=60) is None
    why = podstart.lister_not_started([creating], previous=None, now=NOW, patience=60)
    assert why == (
        "pod p: ContainerCreating for more than 60s (a volume that cannot be mounted?"
        " kubectl describe pod p shows its events)"
    )
