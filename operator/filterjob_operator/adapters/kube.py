"""The one module that talks to the Kubernetes API (besides kopf itself).

The official client is synchronous; every call runs in a thread so the
operator's event loop never blocks. API errors become :class:`~filterjob_operator.adapters.kubeerrors.KubeError`.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

import kubernetes
from kubernetes.client.exceptions import ApiException

from filterjob_operator.adapters.kubeerrors import KubeError, NotOurs, detail_of
from filterjob_operator.core.spec import GROUP, VERSION

PLURAL = "filterjobs"
T = TypeVar("T")
Manifest = dict[str, Any]


def load_config() -> kubernetes.client.ApiClient:
    """In a pod: the service account; elsewhere: the kubeconfig (``KUBECONFIG``)."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    return kubernetes.client.ApiClient()


@dataclass(frozen=True)
class Workers:
    desired: int
    ready: int


@dataclass(frozen=True, kw_only=True)
class WorkerPod:
    """A worker pod as the deletion costs need it."""

    name: str
    #: Its annotations (none: an empty mapping).
    annotations: dict[str, str]
    #: Being deleted already (its cost no longer matters).
    terminating: bool


class Kube:
    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self.api = api
        self.apps = kubernetes.client.AppsV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.autoscaling = kubernetes.client.AutoscalingV2Api(api)
        self.batch = kubernetes.client.BatchV1Api(api)
        self.authorization = kubernetes.client.AuthorizationV1Api(api)

    @staticmethod
    async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as e:
            raise KubeError(e.status or 0, e.reason or str(e), detail=detail_of(e)) from e

    async def _read(self, read: Callable[..., T], namespace: str, name: str) -> T | None:
        """The object, or None if it does not exist."""
        try:
            return await self._call(read, name, namespace)
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def filterjob(self, namespace: str, name: str, *, seconds: float | None = None) -> Manifest | None:
        """The FilterJob as the API returns it (status included), or None if it does not exist."""
        get = self.custom.get_namespaced_custom_object
        try:
            job = await self._call(get, GROUP, VERSION, namespace, PLURAL, name, _request_timeout=seconds)
        except KubeError as e:
            if e.status == 404:
                return None
            raise
        return job if isinstance(job, dict) else None

    async def secret(self, namespace: str, name: str) -> dict[str, str]:
        secret = await self._call(self.core.read_namespaced_secret, name, namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    async def config_map(self, namespace: str, name: str) -> dict[str, str]:
        found = await self._call(self.core.read_namespaced_config_map, name, namespace)
        return dict(found.data or {})

    async def access_review(self, review: Manifest) -> tuple[bool, str]:
        """Whether a SubjectAccessReview is allowed, and the authorizer's reason."""
        answer = await self._call(self.authorization.create_subject_access_review, review)
        decided = answer.status
        return bool(decided is not None and decided.allowed), (decided.reason or "") if decided is not None else ""

    async def apply_deployment(self, manifest: Manifest, *, keep_replicas: bool) -> None:
        """Create the Deployment, or bring an existing one to the manifest.

        ``keep_replicas``: leave ``spec.replicas`` as it is (an HPA or the scaler owns it).
        """
        patch = {**manifest, "spec": dict(manifest["spec"])}
        if keep_replicas:
            patch["spec"].pop("replicas", None)
        await self._apply(
            self.apps.create_namespaced_deployment, self.apps.patch_namespaced_deployment, manifest, patch
        )

    async def apply_hpa(self, manifest: Manifest) -> None:
        await self._apply(
            self.autoscaling.create_namespaced_horizontal_pod_autoscaler,
            self.autoscaling.patch_namespaced_horizontal_pod_autoscaler,
            manifest,
            manifest,
        )

    async def delete_hpa(self, namespace: str, name: str) -> None:
        """Remove the HPA, if there is one."""
        try:
            await self._call(self.autoscaling.delete_namespaced_horizontal_pod_autoscaler, name, namespace)
        except KubeError as e:
            if e.status != 404:
                raise

    async def apply_custom(self, plural: str, manifest: Manifest) -> str:
        """Create-or-patch a namespaced custom object (group and version from its ``apiVersion``); its uid."""
        group, version = manifest["apiVersion"].split("/")
        meta = manifest["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            stored = await self._call(
                self.custom.create_namespaced_custom_object, group, version, namespace, plural, manifest
            )
        except KubeError as e:
            if e.status != 409:
                raise
            stored = await self._call(
                self.custom.patch_namespaced_custom_object, group, version, namespace, plural, name, manifest
            )
        if not isinstance(stored, dict):
            raise KubeError(0, f"the API server answered {plural} {namespace}/{name} with no object")
        return str(stored["metadata"]["uid"])

    async def delete_custom(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        """Remove a namespaced custom object, if there is one (or its resource is not installed at all)."""
        group, version = api_version.split("/")
        try:
            await self._call(self.custom.delete_namespaced_custom_object, group, version, namespace, plural, name)
        except KubeError as e:
            if e.status != 404:
                raise

    async def apply_secret(self, manifest: Manifest, *, claim: Collection[str]) -> None:
        """Create the Secret, or bring one whose ``claim`` labels are the manifest's to its data and owners.

        Never another's: a Secret of that name without those labels (a user's) is left as it is and
        :class:`NotOurs` raised. The labels are tested in the same patch that writes (JSON patch
        ``test``), so nothing can change in between.
        """
        meta = manifest["metadata"]
        try:
            await self._call(self.core.create_namespaced_secret, meta["namespace"], manifest)
        except KubeError as e:
            if e.status != 409:
                raise
        else:
            return
        data = {key: base64.b64encode(value.encode()).decode() for key, value in manifest["stringData"].items()}
        label = "/metadata/labels/"
        patch = [
            *(
                {"op": "test", "path": label + key.replace("~", "~0").replace("/", "~1"), "value": value}
                for key, value in meta["labels"].items()
                if key in claim
            ),
            {"op": "add", "path": "/data", "value": data},
            {"op": "add", "path": "/metadata/ownerReferences", "value": meta["ownerReferences"]},
        ]
        patch_secret = self.core.patch_namespaced_secret
        try:
            await self._call(
                patch_secret, meta["name"], meta["namespace"], patch, _content_type="application/json-patch+json"
            )
        except KubeError as e:
            if e.status != 422:  # a failed test (a label missing or different); a Secret is never invalid here
                raise
            raise NotOurs(409, f"Secret {meta['namespace']}/{meta['name']} exists and is not the operator's") from e

    async def _apply(
        self, create: Callable[..., Any], patch: Callable[..., Any], manifest: Manifest, changes: Manifest
    ) -> None:
        """Create-or-update in one step: create; if it exists already, patch it to ``changes``."""
        meta = manifest["metadata"]
        try:
            await self._call(create, meta["namespace"], manifest)
        except KubeError as e:
            if e.status != 409:
                raise
            await self._call(patch, meta["name"], meta["namespace"], changes)

    async def create_job(self, manifest: Manifest) -> bool:
        """Create a batch/v1 Job; False if one of that name exists already (it is left as it is)."""
        meta = manifest["metadata"]
        try:
            await self._call(self.batch.create_namespaced_job, meta["namespace"], manifest)
        except KubeError as e:
            if e.status != 409:
                raise
            return False
        return True

    async def job_failure(self, namespace: str, name: str) -> str | None:
        """Why the Job failed for good (its ``Failed`` condition), or None: running, done or gone."""
        job = await self._read(self.batch.read_namespaced_job, namespace, name)
        if job is None:
            return None
        for condition in (job.status.conditions if job.status is not None else None) or []:
            if condition.type == "Failed" and condition.status == "True":
                return f"{condition.reason or 'Failed'}: {condition.message or 'the Job failed'}"
        return None

    async def job_pods(self, namespace: str, name: str) -> list[Manifest]:
        """The pods of a batch/v1 Job (by the label its controller sets), as the API returns them."""
        found = await self._call(
            self.core.list_namespaced_pod, namespace, label_selector=f"batch.kubernetes.io/job-name={name}"
        )
        pods = self.api.sanitize_for_serialization(found.items)  # type: ignore[no-untyped-call]
        return [pod for pod in pods if isinstance(pod, dict)]

    async def worker_pods(self, namespace: str, selector: dict[str, str]) -> list[WorkerPod]:
        """The pods a label selector (the worker Deployment's) selects."""
        labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        found = await self._call(self.core.list_namespaced_pod, namespace, label_selector=labels)
        return [
            WorkerPod(
                name=meta.name,
                annotations=dict(meta.annotations or {}),
                terminating=meta.deletion_timestamp is not None,
            )
            for meta in (pod.metadata for pod in found.items)
            if meta is not None and meta.name
        ]

    async def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        """Merge ``annotations`` into a pod's; a pod gone meanwhile is left gone."""
        try:
            patch = {"metadata": {"annotations": annotations}}
            await self._call(self.core.patch_namespaced_pod, name, namespace, patch)
        except KubeError as e:
            if e.status != 404:
                raise

    async def workers(self, namespace: str, name: str) -> Workers | None:
        deployment = await self._read(self.apps.read_namespaced_deployment, namespace, name)
        if deployment is None:
            return None
        ready = deployment.status.ready_replicas if deployment.status is not None else None
        return Workers(desired=deployment.spec.replicas or 0, ready=ready or 0)

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        await self._call(self.apps.patch_namespaced_deployment_scale, name, namespace, {"spec": {"replicas": replicas}})

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self._call(
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status},
        )

    async def delete_batch_job(self, namespace: str, name: str) -> None:
        """Remove a batch/v1 Job now (its pods follow in the background), if it exists."""
        try:
            await self._call(self.batch.delete_namespaced_job, name, namespace, propagation_policy="Background")
        except KubeError as e:
            if e.status != 404:
                raise

    async def delete_filterjob(self, namespace: str, name: str) -> None:
        """Delete a FilterJob (its finalizer then removes its queues), if it exists."""
        try:
            await self._call(self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
        except KubeError as e:
            if e.status != 404:
                raise
