"""Proof that the Kubernetes emulator harness behaves like an API server where kopf operators care."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import kmock
import kopf
import kubernetes.client
import kubernetes.watch
import pytest
from kubernetes.client.exceptions import ApiException

from .conftest import TEST_CLIENT_TOKEN, K8sApi
from .emulator import (
    DEPLOYMENTS,
    EVENTS,
    FILTERJOBS,
    GROUP,
    HPAS,
    KUBECONFIG_TOKEN,
    LOGIN_HANDLER_TOKEN,
    PLURAL,
    VERSION,
    RunningCluster,
    label_selector_matches,
)

NS = "photos"
TINY_OPERATOR = Path(__file__).with_name("tiny_operator.py")


def filterjob(name: str = "thumbs", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FilterJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"source": {"uri": "file:///in/"}, "filters": [{"name": "grayscale"}], "workers": 2},
    }
    body.update(copy.deepcopy(extra))
    return body


def deployment(name: str, owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if owners:
        meta["ownerReferences"] = owners
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        },
    }


def owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def create_job(api: K8sApi, body: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = api.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body or filterjob())
    return result


def get_job(api: K8sApi, name: str = "thumbs") -> dict[str, Any]:
    result: dict[str, Any] = api.custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)
    return result


def patch_job(api: K8sApi, patch: Any, name: str = "thumbs", **kwargs: Any) -> dict[str, Any]:
    custom = api.custom
    result: dict[str, Any] = custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, patch, **kwargs)
    return result


def rv(body: dict[str, Any]) -> int:
    return int(body["metadata"]["resourceVersion"])


# --------------------------------------------------------------------------------------------------
# Object lifecycle and metadata.


def test_filterjob_crud_assigns_metadata(k8s_api: K8sApi) -> None:
    created = create_job(k8s_api)
    meta = created["metadata"]
    assert meta["uid"]
    assert meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z")
    assert get_job(k8s_api) == created

    listed = k8s_api.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["thumbs"]
    assert int(listed["metadata"]["resourceVersion"]) >= rv(created)
    everywhere = k8s_api.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert len(everywhere["items"]) == 1

    relabelled = patch_job(k8s_api, {"metadata": {"labels": {"tier": "batch"}}})
    assert relabelled["metadata"]["generation"] == 1  # metadata is not spec
    assert rv(relabelled) > rv(created)

    respecced = patch_job(k8s_api, {"spec": {"workers": 5}})
    assert respecced["metadata"]["generation"] == 2
    assert respecced["spec"]["workers"] == 5
    assert respecced["spec"]["filters"] == [{"name": "grayscale"}]  # merge, not replace
    assert respecced["metadata"]["uid"] == meta["uid"]
    assert rv(respecced) > rv(relabelled)

    unchanged = patch_job(k8s_api, {"spec": {"workers": 5}})
    assert rv(unchanged) == rv(respecced)  # a no-op writes nothing

    k8s_api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "thumbs")
    with pytest.raises(ApiException) as err:
        get_job(k8s_api)
    assert err.value.status == 404

    recreated = create_job(k8s_api)
    assert recreated["metadata"]["uid"] != meta["uid"]
    assert recreated["metadata"]["generation"] == 1


def test_api_errors_and_preconditions(k8s_api: K8sApi) -> None:
    created = create_job(k8s_api)
    with pytest.raises(ApiException) as err:
        create_job(k8s_api)
    assert err.value.status == 409

    with pytest.raises(ApiException) as err:
        get_job(k8s_api, "absent")
    assert err.value.status == 404

    patch_job(k8s_api, {"spec": {"workers": 3}})
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "spec": {"workers": 4}}
    with pytest.raises(ApiException) as err:
        patch_job(k8s_api, stale)
    assert err.value.status == 409

    # kopf's finalizer patches are JSON patches guarded by a resourceVersion test: 422 on a race.
    guarded = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": created["metadata"]["resourceVersion"]},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
    ]
    with pytest.raises(ApiException) as err:
        patch_job(k8s_api, guarded, _content_type="application/json-patch+json")
    assert err.value.status == 422

    current = get_job(k8s_api)
    guarded[0]["value"] = current["metadata"]["resourceVersion"]
    patched = patch_job(k8s_api, guarded, _content_type="application/json-patch+json")
    assert patched["metadata"]["finalizers"] == ["x/y"]

    with pytest.raises(ApiException) as err:
        k8s_api.custom.get_namespaced_custom_object("nope.dev", "v1", NS, "nopes", "x")
    assert err.value.status == 404


def test_generate_name_namespaces_and_events(k8s_api: K8sApi, cluster: RunningCluster) -> None:
    k8s_api.core.create_namespace({"metadata": {"name": NS}})
    assert k8s_api.core.read_namespace(NS).metadata.uid
    assert [ns.metadata.name for ns in k8s_api.core.list_namespace().items] == [NS]

    event = {
        "metadata": {"generateName": "thumbs-"},
        "involvedObject": {"kind": "FilterJob", "name": "thumbs", "namespace": NS},
        "reason": "Testing",
        "message": "hello",
        "type": "Normal",
    }
    first = k8s_api.core.create_namespaced_event(NS, event)
    second = k8s_api.core.create_namespaced_event(NS, event)
    assert first.metadata.name.startswith("thumbs-")
    assert first.metadata.name != second.metadata.name
    assert len(cluster.list(EVENTS, NS)) == 2
    selected = k8s_api.core.list_namespaced_event(NS, field_selector="involvedObject.name=thumbs")
    assert len(selected.items) == 2


def test_builtin_resources_are_served(k8s_api: K8sApi) -> None:
    crd = kubernetes.client.ApiextensionsV1Api(k8s_api.client).read_custom_resource_definition(f"{PLURAL}.{GROUP}")
    assert crd.spec.names.short_names == ["fj"]
    assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"

    secret = k8s_api.core.create_namespaced_secret(NS, {"metadata": {"name": "s3"}, "stringData": {"key": "v"}})
    assert secret.metadata.uid
    stored = k8s_api.core.read_namespaced_secret("s3", NS)
    assert (stored.data, stored.string_data) == ({"key": "dg=="}, None)

    leases = kubernetes.client.CoordinationV1Api(k8s_api.client)
    leases.create_namespaced_lease(NS, {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "me"}})
    assert leases.read_namespaced_lease("leader", NS).spec.holder_identity == "me"

    events = kubernetes.client.EventsV1Api(k8s_api.client)
    event = {
        "metadata": {"generateName": "fj-"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "filterjob.dev/operator",
        "reportingInstance": "test",
        "action": "Testing",
        "reason": "Testing",
        "regarding": {"kind": "FilterJob", "name": "thumbs", "namespace": NS},
        "type": "Normal",
    }
    assert events.create_namespaced_event(NS, event).metadata.name.startswith("fj-")
    assert k8s_api.autoscaling.list_namespaced_horizontal_pod_autoscaler(NS).items == []

    with pytest.raises(ApiException) as err:
        k8s_api.core.list_namespaced_pod(NS)  # not among the served built-ins
    assert err.value.status == 404


def test_builtin_objects_are_validated(k8s_api: K8sApi) -> None:
    # The typed client would refuse these itself; the generic one sends them as they are.
    invalid = deployment("workers")
    del invalid["spec"]["selector"]
    with pytest.raises(ApiException) as err:
        k8s_api.custom.create_namespaced_custom_object("apps", "v1", NS, "deployments", invalid)
    assert err.value.status == 422
    assert "selector" in err.value.body

    k8s_api.apps.create_namespaced_deployment(NS, deployment("workers"))
    patch = {"spec": {"replicas": "two"}}
    with pytest.raises(ApiException) as err:
        k8s_api.custom.patch_namespaced_custom_object("apps", "v1", NS, "deployments", "workers", patch)
    assert err.value.status == 422
    assert k8s_api.apps.read_namespaced_deployment("workers", NS).spec.replicas == 1

    # Unknown fields pass (the API server drops them by default), and custom resources are not checked.
    k8s_api.apps.patch_namespaced_deployment("workers", NS, {"spec": {"surprise": True}})
    create_job(k8s_api, filterjob(spec="not even an object"))


def test_crds_created_through_the_api_are_served(k8s_api: K8sApi) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Cluster",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [
                {"name": version, "served": True, "storage": version == "v1", "subresources": {"status": {}}}
                for version in ("v1beta1", "v1")
            ],
        },
    }
    k8s_api.custom.create_cluster_custom_object("apiextensions.k8s.io", "v1", "customresourcedefinitions", crd)
    groups = {g.name: g for g in kubernetes.client.ApisApi(k8s_api.client).get_api_versions().groups}
    assert groups["example.dev"].preferred_version.version == "v1"

    widget = {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"x": 1}}
    created = k8s_api.custom.create_cluster_custom_object("example.dev", "v1", "widgets", widget)
    assert "status" not in created

    k8s_api.custom.delete_cluster_custom_object(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", crd["metadata"]["name"]
    )
    with pytest.raises(ApiException) as err:
        k8s_api.custom.list_cluster_custom_object("example.dev", "v1", "widgets")
    assert err.value.status == 404


def test_reactions_added_by_a_test_answer_first(cluster: RunningCluster, k8s_api: K8sApi) -> None:
    create_job(k8s_api)
    cluster.call(lambda em: em[kmock.method.GET, FILTERJOBS][:1] << 503, copy_result=False)
    with pytest.raises(ApiException) as err:
        get_job(k8s_api)
    assert err.value.status == 503
    assert get_job(k8s_api)["metadata"]["name"] == "thumbs"  # the reaction was for one request only


def test_label_selectors(k8s_api: K8sApi) -> None:
    create_job(k8s_api, filterjob("a", metadata={"name": "a", "labels": {"tier": "batch", "team": "x"}}))
    create_job(k8s_api, filterjob("b", metadata={"name": "b", "labels": {"tier": "web"}}))
    create_job(k8s_api, filterjob("c", metadata={"name": "c"}))

    def names(selector: str) -> list[str]:
        listed = k8s_api.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, label_selector=selector)
        return sorted(item["metadata"]["name"] for item in listed["items"])

    assert names("tier=batch") == ["a"]
    assert names("tier!=batch") == ["b", "c"]
    assert names("tier in (batch, web),!team") == ["b"]
    assert names("team") == ["a"]
    assert label_selector_matches("tier notin (web)", {"tier": "batch"})


# --------------------------------------------------------------------------------------------------
# Subresources.


def test_status_subresource(k8s_api: K8sApi) -> None:
    created = create_job(k8s_api, filterjob(status={"phase": "Forged"}))
    assert "status" not in created  # dropped on create, as with a status subresource

    main = patch_job(k8s_api, {"spec": {"workers": 3}, "status": {"phase": "Ignored"}})
    assert "status" not in main
    assert main["spec"]["workers"] == 3

    status = k8s_api.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, "thumbs", {"status": {"phase": "Running"}, "spec": {"workers": 99}}
    )
    assert status["status"] == {"phase": "Running"}
    assert status["spec"]["workers"] == 3  # only .status changes through /status
    assert status["metadata"]["generation"] == main["metadata"]["generation"]
    assert rv(status) > rv(main)

    replaced = copy.deepcopy(status)
    replaced["status"] = {"phase": "Done", "processed": 10}
    replaced = k8s_api.custom.replace_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "thumbs", replaced)
    assert replaced["status"] == {"phase": "Done", "processed": 10}

    # PUT of the object itself keeps the status and bumps the generation on a spec change.
    whole = copy.deepcopy(replaced)
    whole["spec"]["workers"] = 4
    whole["status"] = {"phase": "Overwritten?"}
    whole = k8s_api.custom.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "thumbs", whole)
    assert whole["status"] == {"phase": "Done", "processed": 10}
    assert whole["metadata"]["generation"] == status["metadata"]["generation"] + 1
    assert k8s_api.custom.get_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "thumbs") == whole


def test_deployment_scale_subresource(k8s_api: K8sApi, cluster: RunningCluster) -> None:
    created = k8s_api.apps.create_namespaced_deployment(NS, deployment("workers"))
    assert created.spec.replicas == 1  # defaulted
    assert created.metadata.generation == 1

    scale = k8s_api.apps.read_namespaced_deployment_scale("workers", NS)
    assert scale.kind == "Scale"
    assert scale.api_version == "autoscaling/v1"
    assert scale.spec.replicas == 1
    assert scale.status.selector == "app=workers"

    scale = k8s_api.apps.patch_namespaced_deployment_scale("workers", NS, {"spec": {"replicas": 4}})
    assert scale.spec.replicas == 4
    stored = cluster.get(DEPLOYMENTS, NS, "workers")
    assert stored is not None
    assert stored["spec"]["replicas"] == 4
    assert stored["metadata"]["generation"] == 2

    scale.spec.replicas = 2
    scale = k8s_api.apps.replace_namespaced_deployment_scale("workers", NS, scale)
    assert scale.spec.replicas == 2
    assert k8s_api.apps.read_namespaced_deployment("workers", NS).spec.replicas == 2

    with pytest.raises(ApiException) as err:
        k8s_api.apps.patch_namespaced_deployment_scale("workers", NS, {"spec": {"replicas": -1}})
    assert err.value.status == 422

    # Deployments have a status subresource too: no controller runs, so tests write it themselves.
    k8s_api.apps.patch_namespaced_deployment_status("workers", NS, {"status": {"replicas": 2, "readyReplicas": 2}})
    assert k8s_api.apps.read_namespaced_deployment_scale("workers", NS).status.replicas == 2
    # ... and a patch of the object ignores .status.
    k8s_api.apps.patch_namespaced_deployment("workers", NS, {"status": {"readyReplicas": 0}})
    assert k8s_api.apps.read_namespaced_deployment("workers", NS).status.ready_replicas == 2


# --------------------------------------------------------------------------------------------------
# Deletion: finalizers and garbage collection.


def test_finalizers_hold_deletion(k8s_api: K8sApi, cluster: RunningCluster) -> None:
    create_job(k8s_api, filterjob(metadata={"name": "thumbs", "finalizers": ["a/one", "b/two"]}))
    before = get_job(k8s_api)

    k8s_api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "thumbs")
    terminating = get_job(k8s_api)
    assert terminating["metadata"]["deletionTimestamp"]
    assert terminating["metadata"]["generation"] == before["metadata"]["generation"] + 1

    k8s_api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "thumbs")  # again: no change
    assert get_job(k8s_api) == terminating

    with pytest.raises(ApiException) as err:
        patch_job(k8s_api, {"metadata": {"finalizers": ["a/one", "b/two", "c/new"]}})
    assert err.value.status == 422

    patch_job(k8s_api, {"metadata": {"finalizers": ["b/two"]}})
    assert get_job(k8s_api)["metadata"]["finalizers"] == ["b/two"]
    last = patch_job(k8s_api, {"metadata": {"finalizers": None}})
    assert last["metadata"]["deletionTimestamp"]
    assert cluster.get(FILTERJOBS, NS, "thumbs") is None
    with pytest.raises(ApiException) as err:
        get_job(k8s_api)
    assert err.value.status == 404


def test_owner_garbage_collection(k8s_api: K8sApi, cluster: RunningCluster) -> None:
    job = create_job(k8s_api)
    other = create_job(k8s_api, filterjob("other"))
    k8s_api.apps.create_namespaced_deployment(NS, deployment("thumbs-workers", [owner_ref(job)]))
    k8s_api.apps.create_namespaced_deployment(NS, deployment("shared", [owner_ref(job), owner_ref(other)]))
    k8s_api.apps.create_namespaced_deployment(NS, deployment("unrelated"))
    hpa = {
        "metadata": {"name": "thumbs-workers", "ownerReferences": [owner_ref(job)]},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "thumbs-workers"},
            "minReplicas": 1,
            "maxReplicas": 5,
        },
    }
    k8s_api.autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa)
    # A dependent with its own finalizer is deleted gracefully, like any other object.
    held = deployment("held", [owner_ref(job)])
    held["metadata"]["finalizers"] = ["x/hold"]
    k8s_api.apps.create_namespaced_deployment(NS, held)

    k8s_api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "thumbs")

    assert cluster.get(DEPLOYMENTS, NS, "thumbs-workers") is None
    assert cluster.get(HPAS, NS, "thumbs-workers") is None
    assert cluster.get(DEPLOYMENTS, NS, "unrelated") is not None
    shared = cluster.get(DEPLOYMENTS, NS, "shared")
    assert shared is not None
    assert [ref["name"] for ref in shared["metadata"]["ownerReferences"]] == ["other"]
    held_now = cluster.get(DEPLOYMENTS, NS, "held")
    assert held_now is not None
    assert held_now["metadata"]["deletionTimestamp"]

    # Orphaning keeps dependents and drops the reference to the deleted owner.
    k8s_api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "other", propagation_policy="Orphan")
    orphan = cluster.get(DEPLOYMENTS, NS, "shared")
    assert orphan is not None
    assert "ownerReferences" not in orphan["metadata"]


def test_gc_waits_for_the_owner_finalizers(k8s_api: K8sApi, cluster: RunningCluster) -> None:
    job = create_job(k8s_api, filterjob(metadata={"name": "thumbs", "finalizers": ["x/hold"]}))
    k8s_api.apps.create_namespaced_deployment(NS, deployment("thumbs-workers", [owner_ref(job)]))

    k8s_api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "thumbs")
    assert cluster.get(DEPLOYMENTS, NS, "thumbs-workers") is not None  # the owner still exists

    patch_job(k8s_api, {"metadata": {"finalizers": []}})
    assert cluster.get(FILTERJOBS, NS, "thumbs") is None
    assert cluster.get(DEPLOYMENTS, NS, "thumbs-workers") is None


# --------------------------------------------------------------------------------------------------
# Watching, waiting and the request log.


def test_watch_replays_from_a_resource_version(k8s_api: K8sApi) -> None:
    listed = k8s_api.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    create_job(k8s_api)
    patch_job(k8s_api, {"spec": {"workers": 7}})
    k8s_api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "thumbs")

    watch = kubernetes.watch.Watch()
    events = list(
        watch.stream(
            k8s_api.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            NS,
            PLURAL,
            resource_version=listed["metadata"]["resourceVersion"],
            timeout_seconds=1,
        )
    )
    assert [(e["type"], e["object"]["spec"]["workers"]) for e in events] == [
        ("ADDED", 2),
        ("MODIFIED", 7),
        ("DELETED", 7),
    ]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3


def test_wait_for_wakes_on_changes(cluster: RunningCluster, k8s_api: K8sApi) -> None:
    with pytest.raises(TimeoutError):
        cluster.wait_for_object(FILTERJOBS, NS, "thumbs", timeout=0.2)
    create_job(k8s_api)
    job = cluster.wait_for_object(FILTERJOBS, NS, "thumbs", lambda o: o["metadata"]["generation"] == 1)
    assert job["spec"]["workers"] == 2


def test_request_log_for_rbac(cluster: RunningCluster, k8s_api: K8sApi) -> None:
    create_job(k8s_api)
    patch_job(k8s_api, {"spec": {"workers": 1}})
    k8s_api.custom.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "thumbs", {"status": {}})
    k8s_api.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    k8s_api.apps.create_namespaced_deployment(NS, deployment("d"))
    k8s_api.apps.read_namespaced_deployment_scale("d", NS)
    k8s_api.apps.delete_collection_namespaced_deployment(NS)
    k8s_api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "thumbs")
    with pytest.raises(ApiException):
        get_job(k8s_api)

    calls = cluster.api_calls
    assert {(c.method, c.verb, c.rbac_resource, c.status) for c in calls} == {
        ("POST", "create", "filterjobs", 201),
        ("PATCH", "patch", "filterjobs", 200),
        ("PATCH", "patch", "filterjobs/status", 200),
        ("GET", "list", "filterjobs", 200),
        ("POST", "create", "deployments", 201),
        ("GET", "get", "deployments/scale", 200),
        ("DELETE", "deletecollection", "deployments", 200),
        ("DELETE", "delete", "filterjobs", 200),
        ("GET", "get", "filterjobs", 404),
    }
    assert all(c.namespace == NS for c in calls if c.method != "GET" or c.verb != "list")
    assert all(c.authorization == f"Bearer {TEST_CLIENT_TOKEN}" for c in calls)
    assert cluster.call(lambda em: em.rbac_usage(token=TEST_CLIENT_TOKEN)) >= {
        (GROUP, "filterjobs/status", "patch"),
        ("apps", "deployments", "deletecollection"),
    }


# --------------------------------------------------------------------------------------------------
# End to end: a real kopf operator against the emulator.


@pytest.mark.parametrize("login", ["kubeconfig", "handler"])
def test_kopf_operator_end_to_end(
    cluster: RunningCluster, kubeconfig: Path, k8s_api: K8sApi, login: Literal["kubeconfig", "handler"]
) -> None:
    default_registry = kopf.get_default_registry()
    with cluster.run_operator(TINY_OPERATOR, login=login) as runner:
        job = create_job(k8s_api)
        uid = job["metadata"]["uid"]

        workers = cluster.wait_for_object(DEPLOYMENTS, NS, "thumbs-workers", timeout=20)
        assert workers["spec"]["replicas"] == 2
        (ref,) = workers["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("FilterJob", "thumbs", uid, True)

        job = cluster.wait_for_object(
            FILTERJOBS,
            NS,
            "thumbs",
            lambda o: o.get("status", {}).get("create_fn") == {"deployment": "thumbs-workers"},
            timeout=20,
        )
        assert job["status"]["phase"] == "Running"
        assert "filterjob.dev/tiny-operator" in job["metadata"]["finalizers"]
        job = cluster.wait_for_object(FILTERJOBS, NS, "thumbs", lambda o: o["status"].get("ticks", 0) >= 3)
        assert job["metadata"]["generation"] == 1  # status writes never bump the generation

        k8s_api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "thumbs")
        cluster.wait_for_absence(FILTERJOBS, NS, "thumbs", timeout=20)
        assert cluster.get(DEPLOYMENTS, NS, "thumbs-workers") is None  # collected with its owner
        cluster.wait_for(
            lambda em: [e for e in em.list_objects(EVENTS, NS) if e.get("reason") == "Deleting"],
            message="the delete handler's event",
        )

    assert runner.exception is None
    assert runner.exit_code == 0
    assert "tiny-operator: delete handler ran for thumbs" in runner.output
    assert kopf.get_default_registry() is default_registry  # the operator's handlers did not leak

    kopf_calls = [c for c in cluster.api_calls if c.user_agent.startswith("kopf/")]
    assert kopf_calls
    assert not [c for c in kopf_calls if c.status is not None and c.status >= 500]
    usage = cluster.call(lambda em: em.rbac_usage(user_agent_prefix="kopf/"))
    assert {
        (GROUP, "filterjobs", "list"),
        (GROUP, "filterjobs", "watch"),
        (GROUP, "filterjobs", "patch"),
        (GROUP, "filterjobs/status", "patch"),
        ("", "events", "create"),
    } <= usage
    if login == "handler":
        assert {c.authorization for c in kopf_calls} == {f"Bearer {LOGIN_HANDLER_TOKEN}"}
    else:
        assert {c.authorization for c in kopf_calls} == {f"Bearer {KUBECONFIG_TOKEN}"}
    # The operator's own client (not kopf) used the kubeconfig; the test's client has its own token.
    assert ("apps", "deployments", "create") in cluster.call(lambda em: em.rbac_usage(token=KUBECONFIG_TOKEN))
    assert ("apps", "deployments", "create") not in cluster.call(lambda em: em.rbac_usage(token=TEST_CLIENT_TOKEN))
