"""The real control plane the Kubernetes tests share (tests/helpers/controlplane.py, fixture ``control_plane``).

Started once per session: each test works in a namespace of its own and removes what it made that
outlives the namespace (cluster-scoped objects). Waits follow watches (tests/helpers/watching.py).
"""

from __future__ import annotations

import copy
import datetime
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest
import yaml
from click.testing import CliRunner

from filterjob_operator import cli
from tests.helpers import controlplane
from tests.helpers.controlplane import (
    ADMIN_USER,
    ROOT,
    Binaries,
    ControlPlane,
    ControlPlaneError,
    alive,
    free_port,
    get,
    wait_gone,
)
from tests.helpers.jobfiles import JOB
from tests.helpers.watching import api_error, named, wait_for_list

FORBIDDEN = 403
INVALID = 422


@pytest.fixture
def admin(control_plane: ControlPlane) -> Iterator[kubernetes.client.ApiClient]:
    with control_plane.api_client() as client:
        yield client


@pytest.fixture
def namespace(admin: kubernetes.client.ApiClient) -> Iterator[str]:
    """A fresh namespace, deleted after the test (the namespace controller removes what is in it)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = kubernetes.client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": name}})
    # Its ServiceAccount controller makes "default" in a moment; a Pod created before would be refused.
    wait_for_list(
        core.list_namespaced_service_account,
        bool,
        what="the default ServiceAccount",
        namespace=name,
        **named("default"),
    )
    yield name
    core.delete_namespace(name)


def service_account(admin: kubernetes.client.ApiClient, namespace: str, name: str) -> str:
    kubernetes.client.CoreV1Api(admin).create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    return f"system:serviceaccount:{namespace}:{name}"


def grant(admin: kubernetes.client.ApiClient, namespace: str, account: str, rules: list[dict[str, Any]]) -> None:
    """A Role with ``rules`` bound to the ServiceAccount ``account`` of ``namespace``."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(admin)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": account}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": account},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    )


def test_rbac_allows_the_admin_and_refuses_anonymous_and_unprivileged_callers(
    control_plane: ControlPlane, admin: kubernetes.client.ApiClient, namespace: str
) -> None:
    names = {ns.metadata.name for ns in kubernetes.client.CoreV1Api(admin).list_namespace().items}
    assert {"default", "kube-system", namespace} <= names

    # No credentials at all: the server knows who it is talking to (system:anonymous) and says no.
    status, body = get(
        int(control_plane.server.rsplit(":", 1)[1]), "/api/v1/namespaces", control_plane.ssl_context(client=False)
    )
    assert status == FORBIDDEN
    assert 'User \\"system:anonymous\\" cannot list resource \\"namespaces\\"' in body

    user = service_account(admin, namespace, "reader")
    grant(admin, namespace, "reader", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}])
    with control_plane.api_client(token=control_plane.token_for(namespace, "reader")) as client:
        core = kubernetes.client.CoreV1Api(client)
        core.list_namespaced_config_map(namespace)  # what its Role grants
        refused = api_error(core.list_namespace)
        assert refused.status == FORBIDDEN
        assert f'User \\"{user}\\" cannot list resource \\"namespaces\\"' in refused.body
        assert api_error(lambda: core.list_namespaced_secret(namespace)).status == FORBIDDEN
        assert api_error(lambda: core.list_namespaced_config_map("default")).status == FORBIDDEN


def test_a_token_from_token_request_authenticates_as_its_service_account(
    control_plane: ControlPlane, admin: kubernetes.client.ApiClient, namespace: str
) -> None:
    user = service_account(admin, namespace, "operator")
    token = control_plane.token_for(namespace, "operator", seconds=600)
    with control_plane.api_client(token=token) as client:
        review = kubernetes.client.AuthenticationV1Api(client).create_self_subject_review({})
    assert review.status.user_info.username == user
    assert {"system:serviceaccounts", f"system:serviceaccounts:{namespace}"} <= set(review.status.user_info.groups)

    with control_plane.api_client(token=token + "x") as client:  # a forged signature is nobody
        forged = kubernetes.client.AuthenticationV1Api(client)
        assert api_error(lambda: forged.create_self_subject_review({})).status == 401


def test_the_audit_log_records_each_request_by_user_verb_resource_and_subresource(
    control_plane: ControlPlane, admin: kubernetes.client.ApiClient, namespace: str
) -> None:
    since = control_plane.audit_offset()
    user = service_account(admin, namespace, "auditee")
    grant(
        admin,
        namespace,
        "auditee",
        [{"apiGroups": [""], "resources": ["pods", "pods/status"], "verbs": ["get", "list"]}],
    )
    with control_plane.api_client(token=control_plane.token_for(namespace, "auditee")) as client:
        core = kubernetes.client.CoreV1Api(client)
        core.list_namespaced_pod(namespace)
        # Not there, but asked for: a request is audited whatever its answer.
        assert api_error(lambda: core.read_namespaced_pod_status("nobody", namespace)).status == 404
        assert api_error(lambda: core.list_namespaced_secret(namespace)).status == FORBIDDEN
        kubernetes.client.VersionApi(client).get_code()  # a non-resource URL: not an API usage

    last = control_plane.await_audit(
        lambda e: e["user"].get("username") == user and e.get("objectRef", {}).get("resource") == "secrets",
        since=since,
    )
    assert last["verb"] == "list"
    assert last["objectRef"]["namespace"] == namespace
    assert last["annotations"]["authorization.k8s.io/decision"] == "forbid"
    assert last["responseStatus"]["code"] == FORBIDDEN
    assert control_plane.api_usage(user) == {
        ("list", "", "pods", ""),
        ("get", "", "pods", "status"),
        ("list", "", "secrets", ""),
    }
    assert control_plane.api_usage(user, decision="allow") == {("list", "", "pods", ""), ("get", "", "pods", "status")}
    assert ("create", "", "serviceaccounts", "token") in control_plane.api_usage(ADMIN_USER, since=since)
    assert ("create", "", "serviceaccounts", "token") not in control_plane.api_usage(
        ADMIN_USER, since=control_plane.audit_offset()
    )


@pytest.fixture
def filterjob_crd(admin: kubernetes.client.ApiClient) -> Iterator[dict[str, Any]]:
    """The CRD ``filterjob crd`` prints, applied and established; deleted after the test."""
    printed = CliRunner().invoke(cli.main, ["crd"])
    assert printed.exit_code == 0, printed.output
    crd = yaml.safe_load(printed.output)
    extensions = kubernetes.client.ApiextensionsV1Api(admin)
    name = crd["metadata"]["name"]
    try:
        extensions.create_custom_resource_definition(crd)
        ours = True
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise
        # Installed by another test of the session (helm): test this CRD in it, and leave it there.
        crd["metadata"] = extensions.read_custom_resource_definition(name).metadata
        extensions.replace_custom_resource_definition(name, crd)
        ours = False

    def established(found: list[Any]) -> bool:
        conditions = (found[0].status.conditions or []) if found else []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for_list(extensions.list_custom_resource_definition, established, what=f"CRD {name}", **named(name))
    yield crd
    if ours:
        extensions.delete_custom_resource_definition(name)
        wait_for_list(
            extensions.list_custom_resource_definition, lambda found: not found, what="CRD deletion", **named(name)
        )


def test_the_filterjob_crd_is_served_and_its_schema_enforced_by_the_server(
    admin: kubernetes.client.ApiClient, namespace: str, filterjob_crd: dict[str, Any]
) -> None:
    custom = kubernetes.client.CustomObjectsApi(admin)
    group, version = filterjob_crd["spec"]["group"], filterjob_crd["spec"]["versions"][0]["name"]

    def create(spec_change: dict[str, Any], name: str) -> Any:
        job = copy.deepcopy(JOB)
        job["metadata"] = {"name": name, "namespace": namespace}
        job["spec"].update(spec_change)
        return custom.create_namespaced_custom_object(group, version, namespace, "filterjobs", job)

    created = create({}, "valid")
    assert created["metadata"]["uid"]
    assert (
        custom.get_namespaced_custom_object(group, version, namespace, "filterjobs", "valid")["spec"] == created["spec"]
    )

    # The CRD's own CEL message, from the server.
    refused = api_error(lambda: create({"filters": [{"name": "grayscale", "radius": 2}]}, "cel"))
    assert refused.status == INVALID
    assert "filter grayscale takes no parameters" in refused.body
    # And its OpenAPI schema.
    refused = api_error(lambda: create({"filters": [{"name": "blur", "radius": -1}]}, "schema"))
    assert refused.status == INVALID
    assert "spec.filters[0].radius" in refused.body
    assert "should be greater than or equal to 0" in refused.body
    names = [
        item["metadata"]["name"]
        for item in custom.list_namespaced_custom_object(group, version, namespace, "filterjobs")["items"]
    ]
    assert names == ["valid"]


def pod_template(namespace: str, labels: dict[str, str], node_label: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels},
        "spec": {
            # Only a node of this test can take them: another test's (or the kubelet harness's) cannot.
            "nodeSelector": {"filterjob.dev/test-node": node_label},
            "containers": [{"name": "main", "image": "filterjob:test", "command": ["sleep", "3600"]}],
        },
    }


@pytest.mark.slow
def test_a_deployment_gets_replicasets_and_pods_from_the_real_controllers_and_the_garbage_collector_removes_them(
    admin: kubernetes.client.ApiClient, namespace: str
) -> None:
    apps, core = kubernetes.client.AppsV1Api(admin), kubernetes.client.CoreV1Api(admin)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": pod_template(namespace, labels, "none"),
            },
        },
    )
    [replica_set] = wait_for_list(
        apps.list_namespaced_replica_set, lambda found: len(found) == 1, what="the ReplicaSet", namespace=namespace
    )
    [owner] = replica_set.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == ("Deployment", "web", True)
    pods = wait_for_list(core.list_namespaced_pod, lambda found: len(found) == 2, what="two pods", namespace=namespace)
    for pod in pods:
        assert pod.metadata.owner_references[0].name == replica_set.metadata.name
        assert pod.spec.service_account_name == "default"  # the ServiceAccount admission plugin is on
        assert not pod.spec.node_name  # no node of this test exists: the scheduler leaves them
    unschedulable = wait_for_list(
        core.list_namespaced_pod,
        lambda found: all(
            any(c.type == "PodScheduled" and c.status == "False" for c in (p.status.conditions or [])) for p in found
        ),
        what="pods the scheduler tried",
        namespace=namespace,
    )
    assert len(unschedulable) == 2

    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    wait_for_list(
        apps.list_namespaced_replica_set, lambda found: not found, what="ReplicaSets gone", namespace=namespace
    )
    wait_for_list(core.list_namespaced_pod, lambda found: not found, what="pods gone", namespace=namespace)


@pytest.mark.slow
def test_the_scheduler_binds_a_pod_to_a_ready_node_registered_with_a_node_identity(
    control_plane: ControlPlane, admin: kubernetes.client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = kubernetes.client.CoreV1Api(admin)
    node = f"node-{namespace}"
    core.create_namespaced_pod(namespace, {**pod_template(namespace, {}, node), "metadata": {"name": "p"}})

    # The kubelet's own identity, which the Node authorizer and NodeRestriction limit to its node.
    kubeconfig = control_plane.node_kubeconfig(tmp_path / "node", node)
    with kubernetes.config.new_client_from_config(str(kubeconfig)) as client:
        as_node = kubernetes.client.CoreV1Api(client)
        as_node.create_node({"metadata": {"name": node, "labels": {"filterjob.dev/test-node": node}}})
        try:
            as_node.patch_node_status(node, {"status": ready_status()})
            # NodeRestriction: a node writes its own Node only; the Node authorizer: no Secrets of others.
            other = {"metadata": {"name": f"other-{node}"}}
            assert api_error(lambda: as_node.create_node(other)).status == FORBIDDEN
            assert api_error(lambda: as_node.list_namespaced_secret(namespace)).status == FORBIDDEN
            [bound] = wait_for_list(
                core.list_namespaced_pod,
                lambda found: bool(found and found[0].spec.node_name),
                what="the pod bound",
                namespace=namespace,
            )
            assert bound.spec.node_name == node
        finally:
            core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)  # no kubelet confirms it
            core.delete_node(node)


def ready_status() -> dict[str, Any]:
    """A Ready node status with a fresh heartbeat, as a kubelet reports it."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        ],
        "capacity": {"pods": "10", "cpu": "2", "memory": "4Gi"},
        "allocatable": {"pods": "10", "cpu": "2", "memory": "4Gi"},
    }


# -- the helper itself: failures, taken ports, teardown ----------------------------------------------


def test_a_component_that_cannot_start_is_named_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    etcd = fake / "etcd"
    etcd.write_text("#!/bin/sh\necho 'etcdmain: cannot access data directory: permission denied' >&2\nexit 3\n")
    etcd.chmod(0o755)
    with pytest.raises(ControlPlaneError) as failed:
        ControlPlane.start(tmp_path / "plane", binaries=Binaries(str(fake)))
    assert str(failed.value).startswith("etcd exited with 3 before it was ready:\n")
    assert "cannot access data directory: permission denied" in str(failed.value)


def test_a_port_taken_after_it_was_chosen_gets_the_component_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binaries = Binaries.ensure(build=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, so nobody else can bind it
        port = taken.getsockname()[1]
        choices = iter([port])
        # Someone else binds the port between the choice and etcd's start: etcd says so and exits.
        monkeypatch.setattr(controlplane, "free_port", lambda: next(choices, None) or free_port())
        plane = ControlPlane(tmp_path / "plane", binaries=binaries)
        try:
            plane._launch([plane._etcd()])
            etcd = plane.components["etcd"]
            assert etcd.port != port
            assert etcd.running()
        finally:
            plane.stop()
    assert not alive(etcd.pid, etcd.binary)


STARTER = """
import json, sys
from pathlib import Path
from tests.helpers.controlplane import Binaries, ControlPlane
plane = ControlPlane.start(Path(sys.argv[1]), binaries=Binaries.ensure(build=False))
print(json.dumps({name: [c.pid, c.binary] for name, c in plane.components.items()}), flush=True)
sys.stdin.read()  # until the test kills this process
"""


@pytest.mark.slow
def test_no_component_outlives_a_killed_test_session(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path / "plane")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    ) as session:
        try:
            assert session.stdout is not None
            started = json.loads(session.stdout.readline())
            assert set(started) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
            assert all(alive(pid, binary) for pid, binary in started.values())
        finally:
            session.kill()  # no teardown runs, as when pytest itself is killed
    left = [name for name, (pid, binary) in started.items() if not wait_gone(pid, binary, 30)]
    assert not left, f"still running after the session was killed: {left}"
