"""The KEDA objects of a ``mode: keda`` job (``builders.keda``): what they say, without a cluster.

That KEDA's own CRD schemas accept them: tests/integration/test_keda_schemas.py (and the real API
server: tests/integration/k8s/test_keda.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from filterjob_operator.control.builders import keda
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import FilterJob, parse_job

UID = "0b4d6f3e-1c2a-4e5f-9a8b-7c6d5e4f3a2b"


@pytest.fixture
def job(job_doc: dict[str, Any]) -> FilterJob:
    job_doc["metadata"]["uid"] = UID
    job_doc["spec"]["autoscaling"] = {
        "mode": "keda",
        "minReplicas": 0,
        "maxReplicas": 7,
        "messagesPerReplica": 15,
        "scaleDownDelaySeconds": 45,
    }
    return parse_job(job_doc)


def scaled(job: FilterJob, *, vhost: str = "/", polling: int = 5) -> dict[str, Any]:
    return keda.build_scaled_object(job, topology=topology_of(job), vhost=vhost, polling_seconds=polling)


def assert_owned_by_the_job(manifest: dict[str, Any], name: str) -> None:
    meta = manifest["metadata"]
    assert (meta["name"], meta["namespace"]) == (name, "photos")
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("FilterJob", "thumbs", UID, True)
    assert meta["labels"]["filterjob.dev/job"] == "thumbs"


def test_the_scaled_object_scales_the_workers_between_the_specs_bounds(job: FilterJob) -> None:
    manifest = scaled(job, polling=3)
    assert (manifest["apiVersion"], manifest["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    assert_owned_by_the_job(manifest, "thumbs-workers")
    spec = manifest["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "thumbs-workers"}
    # KEDA scales from zero and back to it itself: minReplicas 0 stays 0 (an HPA would need 1).
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 7)
    assert spec["pollingInterval"] == 3
    assert spec["cooldownPeriod"] == 45
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior == {"scaleDown": {"stabilizationWindowSeconds": 45}}


def test_one_rabbitmq_trigger_counts_ready_and_unacked_messages_of_the_task_and_retry_queues(job: FilterJob) -> None:
    (trigger,) = scaled(job)["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["authenticationRef"] == {"name": "thumbs-workers", "kind": "TriggerAuthentication"}
    assert trigger["metadata"] == {
        "protocol": "http",  # the management API: unacked messages count (AMQP counts only ready ones)
        "mode": "QueueLength",
        "value": "15",
        "activationValue": "0",
        "queueName": keda.queue_pattern(topology_of(job)),
        "useRegex": "true",
        "operation": "sum",
    }
    assert all(isinstance(v, str) for v in trigger["metadata"].values())  # KEDA's metadata is strings only


def test_min_replicas_and_the_scale_down_delay_follow_the_spec(job_doc: dict[str, Any]) -> None:
    job_doc["metadata"]["uid"] = UID
    job_doc["spec"]["autoscaling"] = {"mode": "keda", "minReplicas": 2, "maxReplicas": 3, "scaleDownDelaySeconds": 0}
    spec = scaled(parse_job(job_doc))["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["cooldownPeriod"]) == (2, 3, 0)
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 0
    }
    assert spec["triggers"][0]["metadata"]["value"] == "20"  # messagesPerReplica's default


def test_a_scale_down_delay_beyond_the_hpas_limit_keeps_the_cooldown_and_caps_the_window(
    job_doc: dict[str, Any],
) -> None:
    job_doc["metadata"]["uid"] = UID
    job_doc["spec"]["autoscaling"] = {"mode": "keda", "scaleDownDelaySeconds": 7200}
    spec = scaled(parse_job(job_doc))["spec"]
    assert spec["cooldownPeriod"] == 7200
    window = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert (
        window == {"stabilizationWindowSeconds": keda.MAX_STABILIZATION_SECONDS} == {"stabilizationWindowSeconds": 3600}
    )


@pytest.mark.parametrize(("vhost", "named"), [("/", None), ("photos", "photos"), ("team/a", "team/a")])
def test_the_vhost_is_named_unless_it_is_the_default(job: FilterJob, vhost: str, named: str | None) -> None:
    assert scaled(job, vhost=vhost)["spec"]["triggers"][0]["metadata"].get("vhostName") == named


def test_the_queue_pattern_matches_the_task_and_retry_queues_of_this_job_only(job: FilterJob) -> None:
    topology = topology_of(job)
    pattern = re.compile(keda.queue_pattern(topology))
    assert all(pattern.search(name) for name in [topology.tasks, *topology.retry_queues])
    assert len(topology.retry_queues) == 2  # maxAttempts 3: the pattern is tried on real retry queues
    others = [topology.parked, topology.inputs, topology.outputs, topology.progress, topology.events]
    # A job whose base only starts like this one's, and names that merely contain a matching one.
    others += [f"{topology.base}x.tasks", f"x{topology.tasks}", f"{topology.tasks}.x", topology.tasks.replace(".", "-")]
    assert not [name for name in others if pattern.search(name)]


@pytest.mark.parametrize(
    ("management_url", "host"),
    [
        ("http://guest:guest@rabbit:15672/", "http://guest:guest@rabbit:15672/"),
        ("http://guest:guest@rabbit:15672", "http://guest:guest@rabbit:15672/"),
        # Behind a prefix: without the trailing slash KEDA would read "rabbitmq" as the vhost.
        ("https://u:p%40ss@example.com/rabbitmq", "https://u:p%40ss@example.com/rabbitmq/"),
        ("https://u:p@example.com/rabbitmq//?x=1#f", "https://u:p@example.com/rabbitmq/"),
        # No credentials: RabbitMQ's defaults, as the operator's own management client uses them.
        ("http://rabbit:15672/", "http://guest:guest@rabbit:15672/"),
    ],
)
def test_the_host_is_the_management_url_with_its_credentials_ending_in_a_slash(management_url: str, host: str) -> None:
    assert keda.host_url(management_url) == host


def test_the_trigger_authentication_maps_host_to_the_operators_secret(job: FilterJob) -> None:
    manifest = keda.build_trigger_authentication(job)
    assert (manifest["apiVersion"], manifest["kind"]) == ("keda.sh/v1alpha1", "TriggerAuthentication")
    assert_owned_by_the_job(manifest, "thumbs-workers")
    assert manifest["spec"] == {"secretTargetRef": [{"parameter": "host", "name": "thumbs-keda", "key": "host"}]}


def test_the_secret_holds_the_host_and_goes_with_the_trigger_authentication(job: FilterJob) -> None:
    manifest = keda.build_secret(job, management_url="http://u:p@rabbit:15672", authentication_uid="ta-uid")
    assert manifest["stringData"] == {"host": "http://u:p@rabbit:15672/"}
    meta = manifest["metadata"]
    assert (meta["name"], meta["namespace"], meta["labels"]["filterjob.dev/job"]) == ("thumbs-keda", "photos", "thumbs")
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "name": "thumbs-workers",
            "uid": "ta-uid",
            "controller": True,
        }
    ]
