"""Reads from the Kubernetes API that the reconcile core needs: registries, Secrets,
and referenced ModelServices. The kubernetes client is synchronous, so every
call runs in a worker thread; kopf owns the event loop and all writes to the
resource being reconciled (its ``patch``), so this module only reads.
"""
from __future__ import annotations

import asyncio
import base64
from typing import Any, Mapping

import kubernetes
from kubernetes.client.rest import ApiException

from .api import GROUP, VERSION


class NotFound(Exception):
    pass


def load_config() -> None:
    """In-cluster config when running in a pod, else the current kubeconfig."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


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
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        return data, secret.metadata.resource_version

    @staticmethod
    async def _call(fn: Any, what: str) -> Any:
        try:
            return await asyncio.to_thread(fn)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"{what} not found") from None
            raise
