"""Builders: pure, complete, valid Kubernetes objects."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import kubernetes_validate
import pytest

from filterjob_operator.control.builders import common, deployment, hpa, lister
from filterjob_operator.control.settings import DEFAULT_WORKER_RESOURCES, Settings
from filterjob_operator.core import extmetrics, podpolicy
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import FilterJob, JobSpecError, parse_job
from filterjob_worker.core.environment import WorkerConfig

SETTINGS = Settings(worker_image="registry.example/filterjob:1.0", worker_grace_seconds=40)


@pytest.fixture
def job(job_doc: dict[str, Any]) -> FilterJob:
    job_doc["metadata"]["uid"] = "0b4d6f3e-1c2a-4e5f-9a8b-7c6d5e4f3a2b"
    job_doc["spec"]["workers"] = {
        "concurrency": 3,
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "photos"}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    job_doc["spec"]["autoscaling"] = {"mode": "hpa", "minReplicas": 0, "maxReplicas": 7, "messagesPerReplica": 15}
    return parse_job(job_doc)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = manifest["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def assert_owned(manifest: dict[str, Any], job: FilterJob, name: str) -> None:
    """Named ``name`` in the job's namespace, and controlled by the job (deleted with it)."""
    meta = manifest["metadata"]
    assert (meta["name"], meta["namespace"]) == (name, "photos")
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "FilterJob",
        "thumbs",
        job.metadata.uid,
        True,
    )


def test_deployment_is_valid_and_owned(job: FilterJob) -> None:
    manifest = deployment.build(job, settings=SETTINGS, replicas=2, broker_secret="rabbit")
    kubernetes_validate.validate(manifest, "1.33", strict=True)
    assert_owned(manifest, job, "thumbs-workers")
    assert manifest["spec"]["replicas"] == 2
    labels = manifest["spec"]["template"]["metadata"]["labels"]
    assert manifest["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_worker_pod_is_locked_down(job: FilterJob) -> None:
    manifest = deployment.build(job, settings=SETTINGS, replicas=1, broker_secret="rabbit")
    pod = manifest["spec"]["template"]["spec"]
    box = container(manifest)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert box == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # A writable /tmp, since the root filesystem is read-only; then the job's volumes.
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "data"]
    assert [m["mountPath"] for m in container(manifest)["volumeMounts"]] == ["/tmp", "/data"]
    assert pod["terminationGracePeriodSeconds"] > SETTINGS.worker_grace_seconds


def test_probes_point_at_the_worker_endpoints(job: FilterJob) -> None:
    worker = container(deployment.build(job, settings=SETTINGS, replicas=1, broker_secret="rabbit"))
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert worker["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert worker["image"] == "registry.example/filterjob:1.0"


def test_pod_environment_is_a_valid_worker_config(job: FilterJob) -> None:
    worker = container(deployment.build(job, settings=SETTINGS, replicas=1, broker_secret="rabbit"))
    env = {e["name"]: e for e in worker["env"]}
    assert env["FILTERJOB_BROKER_URL"]["valueFrom"] == {"secretKeyRef": {"name": "rabbit", "key": "url"}}
    plain = {name: e["value"] for name, e in env.items() if "value" in e}
    config = WorkerConfig.from_env({**plain, "FILTERJOB_BROKER_URL": "amqp://u:p@rabbit/"})
    assert config.queue == topology_of(job).tasks
    assert config.concurrency == 3
    assert config.grace_seconds == SETTINGS.worker_grace_seconds
    assert config.retry == topology_of(job).retry


def test_the_job_can_choose_image_and_resources(job_doc: dict[str, Any]) -> None:
    job_doc["metadata"]["uid"] = "u-1"
    job_doc["spec"]["workers"] = {"image": "mine:2", "resources": {"limits": {"cpu": "2"}}}
    worker = container(deployment.build(parse_job(job_doc), settings=SETTINGS, replicas=0, broker_secret="b"))
    assert worker["image"] == "mine:2"
    assert worker["resources"] == {"limits": {"cpu": "2"}}


def test_worker_resources_default_to_the_operator_setting(job_doc: dict[str, Any]) -> None:
    job_doc["metadata"]["uid"] = "u-1"
    job = parse_job(job_doc)
    default = container(deployment.build(job, settings=SETTINGS, replicas=0, broker_secret="b"))
    assert default["resources"] == DEFAULT_WORKER_RESOURCES
    default["resources"]["limits"]["memory"] = "1Ti"  # the manifest is a copy, never the shared default
    assert DEFAULT_WORKER_RESOURCES["limits"] == {"memory": "2Gi"}
    chosen = {"requests": {"cpu": "250m"}}
    settings = Settings(worker_resources=chosen)
    assert container(deployment.build(job, settings=settings, replicas=0, broker_secret="b"))["resources"] == chosen
    none = Settings(worker_resources={})
    assert container(deployment.build(job, settings=none, replicas=0, broker_secret="b"))["resources"] == {}


def test_hpa_targets_the_workers_on_the_queue_metric(job: FilterJob) -> None:
    manifest = hpa.build(job)
    kubernetes_validate.validate(manifest, "1.33", strict=True)
    spec = manifest["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "thumbs-workers"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 7)
    external = spec["metrics"][0]["external"]
    assert external["metric"]["name"] == "filterjob_queue_messages"
    assert external["metric"]["selector"]["matchLabels"] == {"namespace": "photos", "job": "thumbs"}
    assert external["target"] == {"type": "AverageValue", "averageValue": "15"}


def test_the_hpa_asks_for_exactly_the_metric_the_operator_serves(job: FilterJob) -> None:
    metric = hpa.build(job)["spec"]["metrics"][0]["external"]["metric"]
    # As the HPA controller sends it: the metric's name in the path, matchLabels as a selector.
    selector = ",".join(f"{k}={v}" for k, v in metric["selector"]["matchLabels"].items())
    wanted = extmetrics.Route(namespace=job.metadata.namespace, metric=metric["name"])
    assert extmetrics.job_of(wanted, extmetrics.parse_selector(selector)) == job.metadata.name
    # The same name and labels as the /metrics series prometheus-adapter serves instead.
    assert metric["name"] == extmetrics.METRIC == "filterjob_queue_messages"


def test_children_need_an_owner_uid(job_doc: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="has no uid"):
        hpa.build(parse_job(job_doc))


def test_lister_job_is_valid_owned_and_runs_once_with_a_few_retries(job: FilterJob) -> None:
    manifest = lister.build(job, settings=SETTINGS, broker_secret="rabbit")
    kubernetes_validate.validate(manifest, "1.33", strict=True)
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    assert_owned(manifest, job, "thumbs-list")
    assert manifest["spec"]["backoffLimit"] == lister.BACKOFF_LIMIT <= 6
    pod = manifest["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    box = container(manifest)
    assert box["command"] == ["filterjob", "list-inputs"]
    assert box["image"] == "registry.example/filterjob:1.0"
    # Never selected by the worker Deployment.
    labels = manifest["spec"]["template"]["metadata"]["labels"]
    assert not common.selector(job).items() <= labels.items()


def test_verifier_job_is_the_lister_pod_listing_the_destination(job: FilterJob) -> None:
    manifest = lister.build_verifier(job, settings=SETTINGS, broker_secret="rabbit")
    kubernetes_validate.validate(manifest, "1.33", strict=True)
    assert_owned(manifest, job, "thumbs-verify")
    assert manifest["metadata"]["labels"]["app.kubernetes.io/component"] == "verifier"
    box = container(manifest)
    assert box["command"] == ["filterjob", "verify-outputs"]
    listing_job = lister.build(job, settings=SETTINGS, broker_secret="rabbit")
    # Same pod otherwise: image, volumes, security, broker Secret and the job, deadline and retries.
    assert manifest["spec"]["activeDeadlineSeconds"] == listing_job["spec"]["activeDeadlineSeconds"]
    assert manifest["spec"]["backoffLimit"] == listing_job["spec"]["backoffLimit"]
    pod, listing_pod = manifest["spec"]["template"]["spec"], listing_job["spec"]["template"]["spec"]
    assert {k: v for k, v in pod.items() if k != "containers"} == {
        k: v for k, v in listing_pod.items() if k != "containers"
    }
    assert {k: v for k, v in box.items() if k not in ("name", "command")} == {
        k: v for k, v in container(listing_job).items() if k not in ("name", "command")
    }


def test_lister_job_fails_at_the_operators_deadline(job: FilterJob) -> None:
    """A lister pod that never starts must not keep its FilterJob Pending: the Job controller
    fails the Job at ``activeDeadlineSeconds``, start-up included."""
    assert lister.build(job, settings=SETTINGS, broker_secret="rabbit")["spec"]["activeDeadlineSeconds"] == 600
    short = dataclasses.replace(SETTINGS, lister_deadline=30)
    manifest = lister.build(job, settings=short, broker_secret="rabbit")
    assert manifest["spec"]["activeDeadlineSeconds"] == 30
    kubernetes_validate.validate(manifest, "1.33", strict=True)


def test_lister_pod_is_locked_down_like_the_workers_and_sees_their_volumes(job: FilterJob) -> None:
    workers = deployment.build(job, settings=SETTINGS, replicas=1, broker_secret="rabbit")
    listing_job = lister.build(job, settings=SETTINGS, broker_secret="rabbit")
    pod, worker_pod = listing_job["spec"]["template"]["spec"], workers["spec"]["template"]["spec"]
    assert pod["securityContext"] == worker_pod["securityContext"]
    assert pod["securityContext"]["runAsUser"] == common.RUN_AS
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert container(listing_job)["securityContext"] == container(workers)["securityContext"]
    assert pod["volumes"] == worker_pod["volumes"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "data"]
    assert container(listing_job)["volumeMounts"] == container(workers)["volumeMounts"]


def test_lister_env_carries_the_broker_secret_and_the_job(job: FilterJob) -> None:
    env = {e["name"]: e for e in container(lister.build(job, settings=SETTINGS, broker_secret="rabbit"))["env"]}
    assert set(env) == {"FILTERJOB_BROKER_URL", lister.JOB_ENV}
    assert env["FILTERJOB_BROKER_URL"]["valueFrom"] == {"secretKeyRef": {"name": "rabbit", "key": "url"}}
    document = json.loads(env[lister.JOB_ENV]["value"])
    assert document["metadata"] == {"name": "thumbs", "namespace": "photos", "uid": job.metadata.uid}
    again = parse_job(document)
    assert again.spec == job.spec
    assert topology_of(again) == topology_of(job)


def test_worker_and_lister_pods_pull_with_the_operators_secrets(job: FilterJob) -> None:
    settings = Settings(image_pull_secrets=("regcred", "mirror"))
    wanted = [{"name": "regcred"}, {"name": "mirror"}]
    workers = deployment.build(job, settings=settings, replicas=1, broker_secret="rabbit")
    listing_job = lister.build(job, settings=settings, broker_secret="rabbit")
    for manifest in (workers, listing_job):
        assert manifest["spec"]["template"]["spec"]["imagePullSecrets"] == wanted
        kubernetes_validate.validate(manifest, "1.33", strict=True)
    plain = deployment.build(job, settings=Settings(), replicas=1, broker_secret="rabbit")
    assert "imagePullSecrets" not in plain["spec"]["template"]["spec"]


OVERRIDES: dict[str, Any] = {
    "podSecurityContext": {"runAsUser": 2000, "runAsGroup": 2000, "fsGroup": 3000, "supplementalGroups": [4000]},
    "securityContext": {"runAsUser": 2000, "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["CHOWN"]}},
    "nodeSelector": {"disktype": "ssd"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
            }
        }
    },
    "priorityClassName": "batch-low",
    "serviceAccountName": "photos-reader",
    "env": [{"name": "AWS_REGION", "value": "eu-west-1"}, {"name": "FILTERJOB_LOG_LEVEL", "value": "DEBUG"}],
    "envFrom": [{"secretRef": {"name": "photos-s3"}}],
    "podLabels": {"team": "imaging"},
    "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
}


@pytest.fixture
def tuned(job_doc: dict[str, Any]) -> FilterJob:
    job_doc["metadata"]["uid"] = "0b4d6f3e-1c2a-4e5f-9a8b-7c6d5e4f3a2b"
    job_doc["spec"]["workers"] = {"volumes": [{"name": "data", "emptyDir": {}}], **OVERRIDES}
    return parse_job(job_doc)


def test_pod_overrides_reach_worker_and_lister_pods(tuned: FilterJob) -> None:
    workers = deployment.build(tuned, settings=SETTINGS, replicas=1, broker_secret="rabbit")
    listing_job = lister.build(tuned, settings=SETTINGS, broker_secret="rabbit")
    for manifest in (workers, listing_job):
        kubernetes_validate.validate(manifest, "1.33", strict=True)
        template = manifest["spec"]["template"]
        pod = template["spec"]
        assert pod["nodeSelector"] == {"disktype": "ssd"}
        assert pod["tolerations"] == OVERRIDES["tolerations"]
        assert pod["affinity"] == OVERRIDES["affinity"]
        assert (pod["priorityClassName"], pod["serviceAccountName"]) == ("batch-low", "photos-reader")
        assert pod["automountServiceAccountToken"] is False  # the pods still never call the API
        # Merged over the restricted defaults, which stay where the job says nothing.
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 2000,
            "runAsGroup": 2000,
            "fsGroup": 3000,
            "fsGroupChangePolicy": "OnRootMismatch",
            "supplementalGroups": [4000],
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        box = container(manifest)
        assert box["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 2000,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        }
        names = [e["name"] for e in box["env"]]
        assert names[-2:] == ["AWS_REGION", "FILTERJOB_LOG_LEVEL"]
        assert "FILTERJOB_BROKER_URL" in names
        assert box["envFrom"] == [{"secretRef": {"name": "photos-s3"}}]
        assert template["metadata"]["labels"]["team"] == "imaging"
        assert template["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "true"
    labels = workers["spec"]["template"]["metadata"]["labels"]
    assert workers["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert workers["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_overrides_are_copies_never_the_jobs_own(tuned: FilterJob) -> None:
    first = deployment.build(tuned, settings=SETTINGS, replicas=1, broker_secret="rabbit")
    first["spec"]["template"]["spec"]["tolerations"][0]["key"] = "changed"
    first["spec"]["template"]["spec"]["securityContext"]["fsGroup"] = 1
    again = deployment.build(tuned, settings=SETTINGS, replicas=1, broker_secret="rabbit")
    assert again["spec"]["template"]["spec"]["tolerations"][0]["key"] == "gpu"
    assert again["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 3000


def test_by_default_pods_do_not_reown_volumes_and_are_scheduled_anywhere(job: FilterJob) -> None:
    for manifest in (
        deployment.build(job, settings=SETTINGS, replicas=1, broker_secret="rabbit"),
        lister.build(job, settings=SETTINGS, broker_secret="rabbit"),
    ):
        pod = manifest["spec"]["template"]["spec"]
        assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
        assert not {"nodeSelector", "tolerations", "affinity", "priorityClassName", "serviceAccountName"} & set(pod)
        assert "envFrom" not in container(manifest)


def test_what_the_operator_sets_on_pods_is_reserved_from_overrides(job: FilterJob) -> None:
    workers = deployment.build(job, settings=SETTINGS, replicas=1, broker_secret="rabbit")
    listing_job = lister.build(job, settings=SETTINGS, broker_secret="rabbit")
    for manifest in (workers, listing_job):
        names = {e["name"] for e in container(manifest)["env"]}
        assert {n for n in names if n.startswith("FILTERJOB_")} <= set(podpolicy.RESERVED_ENV)
        metadata = manifest["spec"]["template"]["metadata"]
        for key in metadata["labels"]:
            assert key in podpolicy.RESERVED_LABELS or key.startswith(podpolicy.RESERVED_PREFIX), key
        for key in metadata.get("annotations", {}):
            assert key in podpolicy.RESERVED_ANNOTATIONS or key.startswith(podpolicy.RESERVED_PREFIX), key


@pytest.mark.parametrize(
    "workers",
    [
        {"securityContext": {"capabilities": "SYS_ADMIN"}},
        {"securityContext": {"capabilities": {"add": "SYS_ADMIN"}}},
        {"podSecurityContext": {"seccompProfile": "Unconfined"}},
        {"env": [{"value": "no name"}, {"name": "FILTERJOB_QUEUE"}]},
    ],
)
def test_overrides_of_the_wrong_shape_are_refused_never_a_crash(
    job_doc: dict[str, Any], workers: dict[str, Any]
) -> None:
    job_doc["spec"]["workers"] = workers
    with pytest.raises(JobSpecError, match=r"spec\.workers\.(securityContext|podSecurityContext|env): must"):
        parse_job(job_doc)
