"""The quickstart on kind (docs/quickstart.md, manifests/quickstart/): valid objects that fit
together (namespace, claim, broker, image, paths), pods that meet the restricted Pod
Security Standard, and commands in the docs that apply exactly these objects, in an order
that works. The chart rendered with the quickstart's values: tests/integration/test_chart.py."""

from __future__ import annotations

from pathlib import PurePosixPath

import kubernetes_validate
import pytest

from filterjob_operator import cli
from filterjob_operator.control.builders import deployment
from filterjob_operator.control.builders.common import workers_name
from filterjob_operator.control.settings import Settings
from filterjob_operator.core.spec import FilterJob, parse_job
from tests import quickstart
from tests.helpers.crd import problems
from tests.quickstart import ROOT, Object

OBJECTS = quickstart.objects()
NAMESPACE = quickstart.the("Namespace")["metadata"]["name"]
#: Volume types the restricted Pod Security Standard allows.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def ids(item: tuple[str, Object]) -> str:
    return f"{item[0]}:{item[1]['kind']}"


def job() -> FilterJob:
    doc = quickstart.the("FilterJob")
    return parse_job({**doc, "metadata": {**doc["metadata"], "uid": "u-1"}})


def image() -> str:
    config = quickstart.values()["image"]
    return f"{config['repository']}:{config['tag']}"


def workers() -> Object:
    """The worker Deployment the operator builds for the quickstart's job, with the chart's settings."""
    resources = quickstart.values()["workers"]["resources"]
    settings = Settings(worker_image=image(), worker_resources=resources)
    return deployment.build(job(), settings=settings, replicas=3, broker_secret=Settings().broker_secret)


def pod_specs() -> dict[str, Object]:
    found = {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["spec"]
        for _, o in OBJECTS
        if o["kind"] in ("Deployment", "Job")
    }
    found["workers"] = workers()["spec"]["template"]["spec"]
    return found


def claim_of(pod: Object, mount_path: str) -> str:
    """The claim a pod's first container mounts at mount_path."""
    container = pod["containers"][0]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == mount_path]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    name: str = volume["persistentVolumeClaim"]["claimName"]
    return name


def file_path(uri: str) -> PurePosixPath:
    assert uri.startswith("file:///"), uri
    return PurePosixPath(uri.removeprefix("file://"))


# ----------------------------------------------------------------------------------------------
# The objects.


def test_the_quickstart_holds_a_namespace_a_broker_a_claim_the_samples_and_a_job() -> None:
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for _, o in OBJECTS)
    assert kinds == [
        "Deployment/rabbitmq",
        "FilterJob/postcards",
        "Job/samples",
        "Namespace/photos",
        "PersistentVolumeClaim/photos",
        "Service/rabbitmq",
    ]


@pytest.mark.parametrize("item", [i for i in OBJECTS if i[1]["kind"] != "FilterJob"], ids=ids)
def test_each_object_is_a_valid_kubernetes_object(item: tuple[str, Object]) -> None:
    kubernetes_validate.validate(item[1], "1.33", strict=True)


def test_the_job_passes_the_crd_and_makes_a_valid_worker_deployment() -> None:
    assert problems(quickstart.the("FilterJob")) == []
    built = workers()
    kubernetes_validate.validate(built, "1.33", strict=True)
    (container,) = built["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image()


def test_everything_is_in_one_namespace_the_operator_watches() -> None:
    for _, obj in OBJECTS:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]
    assert quickstart.values()["watchNamespaces"] == [NAMESPACE]


def test_the_claim_is_read_write_once_the_only_mode_of_kinds_default_storage_class() -> None:
    claim = quickstart.the("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"]  # the cluster's default class


def test_the_operator_the_samples_and_the_workers_mount_the_claim_where_the_job_looks() -> None:
    claim = quickstart.the("PersistentVolumeClaim")["metadata"]["name"]
    spec = job().spec
    (mount,) = spec.workers.volume_mounts
    root = PurePosixPath(mount["mountPath"])
    source, destination = file_path(spec.source.uri), file_path(spec.destination.uri)
    assert root in source.parents
    assert root in destination.parents
    assert source not in destination.parents  # outputs are not read back as inputs
    # The workers.
    assert claim_of(workers()["spec"]["template"]["spec"], str(root)) == claim
    # The operator lists the inputs, so it mounts the same claim at the same path; reading is enough.
    operator = quickstart.values()["operator"]
    (operator_mount,) = operator["extraVolumeMounts"]
    assert operator_mount == {"name": operator_mount["name"], "mountPath": str(root), "readOnly": True}
    pod = {"volumes": operator["extraVolumes"], "containers": [{"volumeMounts": operator["extraVolumeMounts"]}]}
    assert claim_of(pod, str(root)) == claim
    # The samples Job writes into the job's source, through the same claim.
    samples = quickstart.the("Job")["spec"]["template"]["spec"]
    assert claim_of(samples, str(root)) == claim
    (container,) = samples["containers"]
    name, *args = container["command"][1:]
    assert container["command"][0] == "filterjob"
    params = cli.main.commands[name].make_context(name, list(args)).params
    written = PurePosixPath(params["directory"])
    assert written == source or source in written.parents
    assert params["count"] > 0


def test_the_broker_url_names_the_rabbitmq_service_and_user() -> None:
    url = quickstart.broker(quickstart.values()["broker"]["url"])
    service = quickstart.the("Service", "rabbitmq")
    assert url.host == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert url.port == ports["amqp"]["port"]
    assert ports["management"]["port"] == 15672  # where the operator looks for queue statistics
    rabbitmq = quickstart.the("Deployment", "rabbitmq")
    assert service["spec"]["selector"].items() <= rabbitmq["spec"]["template"]["metadata"]["labels"].items()
    (container,) = rabbitmq["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith("-management")  # the management API serves unacked counts
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (url.user, url.password) == (env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"])
    assert url.user != "guest"  # guest may only connect from localhost
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {name: container_ports[p["targetPort"]] for name, p in ports.items()} == {
        "amqp": 5672,
        "management": 15672,
    }
    assert container["readinessProbe"]


def test_the_samples_and_the_workers_use_the_locally_loaded_image() -> None:
    config = quickstart.values()["image"]
    assert config["tag"] != "latest"  # workers have no pull policy: "latest" would mean Always
    assert config["pullPolicy"] == "Never"
    assert not quickstart.values().get("workers", {}).get("image")  # workers get the operator's image
    (samples,) = quickstart.the("Job")["spec"]["template"]["spec"]["containers"]
    assert (samples["image"], samples["imagePullPolicy"]) == (image(), "Never")
    (worker,) = workers()["spec"]["template"]["spec"]["containers"]
    assert worker.get("imagePullPolicy", "IfNotPresent") in ("IfNotPresent", "Never")


def test_the_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = quickstart.the("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("name", sorted(pod_specs()))
def test_each_pod_meets_the_restricted_pod_security_standard(name: str) -> None:
    pod = pod_specs()[name]
    assert {key for volume in pod["volumes"] for key in volume if key != "name"} <= RESTRICTED_VOLUMES
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = {**pod["securityContext"], **container.get("securityContext", {})}
        assert context["runAsNonRoot"] is True
        assert context.get("runAsUser", 1) != 0
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert not container.get("ports") or all(not p.get("hostPort") for p in container["ports"])
    assert not {"hostNetwork", "hostPID", "hostIPC"} & {key for key, value in pod.items() if value}


# ----------------------------------------------------------------------------------------------
# The commands of docs/quickstart.md and the README.


def test_the_readme_gives_the_same_command_sequence_as_the_docs() -> None:
    sequence = quickstart.blocks(quickstart.DOC)[0]
    (readme,) = quickstart.blocks(quickstart.README, "Quickstart on kind")
    assert readme == sequence
    assert "docs/quickstart.md" in quickstart.README.read_text(encoding="utf-8")


def test_the_docs_explain_every_command_of_the_sequence_in_order() -> None:
    sequence, *steps = quickstart.blocks(quickstart.DOC)
    explained = [command for block in steps for command in block]
    positions = [explained.index(command) for command in sequence]
    assert positions == sorted(positions)


def test_the_docs_apply_every_quickstart_file_once_and_nothing_else() -> None:
    sequence = quickstart.blocks(quickstart.DOC)[0]
    applied = [
        path
        for command in sequence
        if command[:2] == ["kubectl", "apply"]
        for path in quickstart.options(command, "-f", "--filename")
    ]
    given_to_helm = quickstart.options(quickstart.helm_install(), "-f", "--values")
    files = sorted(str(p.relative_to(ROOT)) for p in quickstart.QUICKSTART.iterdir())
    assert sorted(applied) == files
    assert given_to_helm == [str(quickstart.VALUES.relative_to(ROOT))]


def test_the_sequence_creates_what_it_needs_before_it_needs_it() -> None:
    sequence = quickstart.blocks(quickstart.DOC)[0]

    def step(*words: str) -> int:
        (found,) = [i for i, c in enumerate(sequence) if all(w in c for w in words)]
        return found

    rabbitmq, samples = quickstart.the("Deployment", "rabbitmq"), quickstart.the("Job")
    order = [
        step("kind", "create"),
        step("scripts/build-image.sh"),
        step("kind", "load"),
        step("manifests/quickstart/namespace.yaml"),
        step("manifests/quickstart/rabbitmq.yaml"),
        step("wait", f"deployment/{rabbitmq['metadata']['name']}"),
        step("helm", "install"),  # the broker answers before the operator starts, the CRD comes with the chart
        step("manifests/quickstart/samples-job.yaml"),
        step("wait", f"job/{samples['metadata']['name']}"),
        step("manifests/quickstart/filterjob.yaml"),  # the operator lists the inputs once, at the start
    ]
    assert order == sorted(order)
    assert step("manifests/quickstart/rabbitmq.yaml") == step("manifests/quickstart/pvc.yaml")
    assert "--for=condition=available" in sequence[step("wait", "deployment/rabbitmq")]
    assert "--for=condition=complete" in sequence[step("wait", "job/samples")]


def test_every_namespaced_command_names_the_quickstart_namespace() -> None:
    for command in quickstart.commands():
        if command[0] in ("kubectl", "helm") and command[1] != "apply":  # apply: the files name it
            assert quickstart.option(command, "-n", "--namespace") == NAMESPACE, command


def test_the_image_built_is_the_image_loaded_and_installed() -> None:
    builds = quickstart.find(["scripts/build-image.sh"])
    assert builds
    for build in builds:
        # Into docker, where kind and k3d load images from.
        assert (quickstart.option(build, "--tag"), quickstart.option(build, "--engine")) == (image(), "docker")
    assert not quickstart.find(["docker", "build"])  # the Dockerfile needs the wheelhouse the script makes
    loads = quickstart.find(["kind", "load", "docker-image"]) + quickstart.find(["k3d", "image", "import"])
    assert loads
    for command in loads:
        assert command[3] == image()


@pytest.mark.parametrize("tool", ["kind", "k3d"])
def test_one_cluster_name_from_create_to_delete(tool: str) -> None:
    """kind create/delete cluster --name N, kind load ... --name N; k3d cluster create/delete N, -c N."""
    used = [c for c in quickstart.commands() if c[0] == tool]
    assert {"create", "delete"} <= {w for c in used for w in c[1:3]}
    names = {quickstart.option(c, "--name", "-c", "--cluster") or c[3] for c in used}
    assert len(names) == 1, used


def test_the_objects_the_docs_name_exist() -> None:
    """kubectl arguments like deployment/rabbitmq, job/samples or fj/postcards name quickstart objects,
    the worker Deployment of the job, or objects of the chart (checked in test_chart.py)."""
    kinds = {"deployment": "Deployment", "deploy": "Deployment", "job": "Job", "fj": "FilterJob", "svc": "Service"}
    ours = {(o["kind"], o["metadata"]["name"]) for _, o in OBJECTS} | {("Deployment", workers_name(job()))}
    named = {
        (kinds[word.split("/")[0]], word.split("/")[1])
        for command in quickstart.commands()
        if command[0] == "kubectl"
        for word in command
        if word.split("/")[0] in kinds and word.count("/") == 1
    }
    chart = {("Deployment", "filterjob"), ("Service", "filterjob-metrics")}
    assert named - chart <= ours
    assert ("FilterJob", "postcards") in named
    for command in quickstart.commands():
        if command[:2] == ["kubectl", "describe"] or command[1:4] == ["-n", NAMESPACE, "describe"]:
            assert command[-2:] == ["fj", job().metadata.name]


def test_the_docs_say_the_broker_is_not_for_production_and_where_to_go_from_here() -> None:
    text = quickstart.DOC.read_text(encoding="utf-8")
    for doc in (text, (quickstart.QUICKSTART / "rabbitmq.yaml").read_text(encoding="utf-8")):
        assert "not for production" in doc.lower()
        assert "RabbitMQ Cluster Operator" in doc
    # The ReadWriteMany claim for clusters with several nodes.
    assert "manifests/examples/photos-pvc.yaml" in text
    assert (ROOT / "manifests" / "examples" / "photos-pvc.yaml").is_file()


def test_every_file_of_the_quickstart_manifests_is_a_kubernetes_object() -> None:
    # ``kubectl apply -f manifests/quickstart/`` applies every file there: Helm values may not sit among them.
    objects = quickstart.objects()
    assert {name for name, _ in objects} == {p.name for p in quickstart.QUICKSTART.iterdir()}
    assert all({"apiVersion", "kind", "metadata"} <= set(doc) for _, doc in objects)
    assert quickstart.VALUES.is_file()
    assert not quickstart.VALUES.is_relative_to(quickstart.QUICKSTART)
