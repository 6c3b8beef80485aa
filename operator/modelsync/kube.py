"""Reads from the Kubernetes API that the reconcile core needs: registries, Secrets,
and referenced ModelServices. The kubernetes client is synchronous, so every
call runs in a worker thread; kopf owns the event loop and all writes to the
resource being reconciled (its ``patch``), so this module only reads.
"""
from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any, Mapping

import kubernetes
from kubernetes.client.rest import ApiException

from .api import GROUP, VERSION


_log = logging.getLogger("modelsync.kube")


class NotFound(Exception):
    pass


def load_config() -> None:
    """In-cluster config when running in a pod, else the current kubeconfig."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    cfg = kubernetes.client.Configuration.get_default_copy()
    cfg.connection_pool_maxsize = 16  # the default (4) is below the writer's thread count
    kubernetes.client.Configuration.set_default(cfg)


def decode_secret_data(data: Mapping[str, str] | None) -> dict[str, str]:
    """A Secret's ``data`` as text. Bytes that are not UTF-8 become U+FFFD, which the core then
    refuses as CredentialsInvalid (naming the key), like any other character a request can't carry."""
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in (data or {}).items()}


class KubeReader:
    """The few reads the core makes, each raising :class:`NotFound` when absent."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None) -> None:
        self._client = api_client or kubernetes.client.ApiClient()
        self._custom = kubernetes.client.CustomObjectsApi(self._client)
        self._core = kubernetes.client.CoreV1Api(self._client)

    async def registry(self, kind: str, name: str, namespace: str) -> Mapping[str, Any]:
        def get() -> Any:
            if kind == "ClusterModelRegistry":
                return self._custom.get_cluster_custom_object(GROUP, VERSION, "clustermodelregistries", name)
            return self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "modelregistries", name)

        return await self._call(get, f"{kind} {namespace + '/' if kind == 'ModelRegistry' else ''}{name}")

    async def model_service(self, name: str, namespace: str) -> Mapping[str, Any]:
        return await self._call(
            lambda: self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "modelservices", name),
            f"ModelService {namespace}/{name}",
        )

    async def secret_data(self, name: str, namespace: str) -> tuple[dict[str, str], str]:
        """The Secret's decoded data, and its resourceVersion (for cache keys)."""
        secret = await self._call(lambda: self._core.read_namespaced_secret(name, namespace), f"Secret {namespace}/{name}")
        return decode_secret_data(secret.data), secret.metadata.resource_version

    @staticmethod
    async def _call(fn: Any, what: str) -> Any:
        try:
            return await asyncio.to_thread(fn)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"{what} not found") from None
            raise


# ---------------------------------------------------------------- writes


def _rv(obj: Mapping[str, Any]) -> int:
    try:
        return int(obj.get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:  # resourceVersions are opaque; etcd's are integers
        return 0


PLURALS = {"Model": "models", "ModelService": "modelservices", "ModelRegistry": "modelregistries",
           "ClusterModelRegistry": "clustermodelregistries"}


class WriteFailed(Exception):
    """A write the apiserver refused or could not take. ``retry`` says whether trying
    again later can help (5xx, 429, connection errors) or not (4xx: the patch itself is wrong)."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class KubeWriter:
    """The only writes the operator makes: status patches and Events, through kopf's own
    asynchronous API client (its credentials, its retries on apiserver errors and its
    Event poster), so the event loop never waits on a thread for a write."""

    def __init__(self, settings: Any) -> None:
        from kopf._cogs.structs import references

        self.settings = settings
        self._resources = {
            kind: references.Resource(GROUP, VERSION, plural, kind=kind, namespaced=kind != "ClusterModelRegistry",
                                      subresources=frozenset({"status"}))
            for kind, plural in PLURALS.items()
        }

    async def patch_status(self, kind: str, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge-patch ``status`` into the object's status subresource; the object as stored,
        or None when it is gone."""
        url = self._resources[kind].get_url(namespace=namespace or None, name=name, subresource="status")
        return await self._merge_patch(url, {"status": dict(status)}, f"status of {kind} {namespace}/{name}")

    async def set_finalizers(self, kind: str, body: Mapping[str, Any], finalizers: list[str]) -> dict[str, Any] | None:
        """Replace metadata.finalizers, guarded by the resourceVersion it was read at (a 409
        means someone else changed the object: read again, decide again)."""
        meta = body.get("metadata") or {}
        url = self._resources[kind].get_url(namespace=meta.get("namespace") or None, name=meta.get("name"))
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
        return await self._merge_patch(url, patch, f"finalizers of {kind} {meta.get('namespace')}/{meta.get('name')}")

    async def _merge_patch(self, url: str, payload: Mapping[str, Any], what: str) -> dict[str, Any] | None:
        """One merge patch: the object as stored, None when it is gone, else :class:`WriteFailed`
        saying whether trying again can help (409, 429, 5xx, connection errors) or not."""
        from kopf._cogs.clients import api, errors

        try:
            return await api.patch(url=url, headers={"Content-Type": "application/merge-patch+json"},
                                   payload=dict(payload), settings=self.settings, logger=_log)
        except errors.APINotFoundError:
            return None
        except errors.APIError as exc:
            code = exc.status or 0
            raise WriteFailed(f"{what}: HTTP {code}", retry=code in (409, 429) or code >= 500) from None
        except Exception as exc:  # connection errors after kopf's retries
            raise WriteFailed(f"{what}: {type(exc).__name__}", retry=True) from None

    async def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about ``obj``, queued to kopf's poster (never worth a retry)."""
        import kopf

        try:
            kopf.event(dict(obj), type=type_, reason=reason, message=message[:1024])
        except Exception:  # noqa: BLE001 - an Event is best effort, as everywhere in Kubernetes
            _log.exception("could not queue the Event %s for %s", reason, (obj.get("metadata") or {}).get("name"))
