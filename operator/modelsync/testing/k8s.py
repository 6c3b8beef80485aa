"""A small synchronous client for tests: apply, read, patch and wait on custom objects."""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, cast

import kubernetes
from kubernetes.client.rest import ApiException

from ..api import GROUP, VERSION

PLURALS = {
    "Model": "models", "ModelService": "modelservices",
    "ModelRegistry": "modelregistries", "ClusterModelRegistry": "clustermodelregistries",
}


class K8s:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig_path = str(kubeconfig)
        self.api_client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        self.custom = kubernetes.client.CustomObjectsApi(self.api_client)
        self.core = kubernetes.client.CoreV1Api(self.api_client)

    def create_namespace(self, name: str) -> None:
        self.core.create_namespace({"metadata": {"name": name}})

    def delete_namespace(self, name: str) -> None:
        try:
            self.core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def secret(self, name: str, namespace: str, data: Mapping[str, str]) -> None:
        self.core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "stringData": dict(data)})

    def create(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create a modelsync.io object (raises ApiException on rejection)."""
        kind = obj["kind"]
        body = {"apiVersion": f"{GROUP}/{VERSION}", **obj}
        if kind == "ClusterModelRegistry":
            return cast(dict[str, Any], self.custom.create_cluster_custom_object(GROUP, VERSION, PLURALS[kind], body))
        ns = namespace or obj["metadata"]["namespace"]
        return cast(dict[str, Any], self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURALS[kind], body))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        if kind == "ClusterModelRegistry":
            return cast(dict[str, Any], self.custom.get_cluster_custom_object(GROUP, VERSION, PLURALS[kind], name))
        return cast(dict[str, Any], self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name))

    def patch(self, kind: str, name: str, namespace: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the object (spec, labels, ...)."""
        return cast(dict[str, Any], self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], name, patch,
            _content_type="application/merge-patch+json"))

    def delete(self, kind: str, name: str, namespace: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def wait(self, kind: str, name: str, namespace: str, predicate: Callable[[dict[str, Any]], bool],
             timeout: float = 60, what: str = "condition") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        obj: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                obj = self.get(kind, name, namespace)
                if predicate(obj):
                    return obj
            except ApiException as exc:
                if exc.status != 404:
                    raise
            time.sleep(0.2)
        raise TimeoutError(f"{kind} {namespace}/{name}: no {what} after {timeout}s; last status: {obj.get('status')}")

    def wait_gone(self, kind: str, name: str, namespace: str, timeout: float = 30) -> None:
        """Until the object no longer exists (its finalizers done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.get(kind, name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            time.sleep(0.2)
        raise TimeoutError(f"{kind} {namespace}/{name} still exists after {timeout}s")

    def empty_namespace(self, namespace: str, patience: float = 2, timeout: float = 20) -> None:
        """Delete the namespace's ModelSync objects and wait until their finalizers are done.

        Namespaces never finish terminating here (no controller-manager), so a test's objects
        would keep being resynced against a shared simulator; and a delete left running would
        land in the next test's journal. Models and services go first, registries last (a
        registry in use is held). An entry a test left unremovable (its simulator stopped, a
        rejected token) would hold its finalizer through every retry: after ``patience``
        seconds it is orphaned (``deletionPolicy: Orphan``) rather than waited out.
        """
        def left(kinds: tuple[str, ...]) -> list[tuple[str, str]]:
            return [(kind, obj["metadata"]["name"]) for kind in kinds
                    for obj in self.custom.list_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURALS[kind])["items"]]

        def gone(kinds: tuple[str, ...], seconds: float) -> list[tuple[str, str]]:
            deadline = time.monotonic() + seconds
            while (remaining := left(kinds)) and time.monotonic() < deadline:
                time.sleep(0.2)
            return remaining

        for kinds in (("Model", "ModelService"), ("ModelRegistry",)):
            for kind, name in left(kinds):
                self.delete(kind, name, namespace)
            for kind, name in gone(kinds, patience):
                if kind != "ModelRegistry":
                    try:
                        self.patch(kind, name, namespace, {"spec": {"deletionPolicy": "Orphan"}})
                    except ApiException as exc:
                        if exc.status != 404:
                            raise
            if remaining := gone(kinds, timeout):
                raise TimeoutError(f"{namespace}: still there after {timeout}s: {remaining}")

    def wait_condition(self, kind: str, name: str, namespace: str, type_: str, status: str = "True",
                       timeout: float = 60, generation: bool = True) -> dict[str, Any]:
        def ok(obj: dict[str, Any]) -> bool:
            for c in (obj.get("status") or {}).get("conditions") or []:
                if c.get("type") == type_ and c.get("status") == status:
                    return not generation or c.get("observedGeneration") == obj["metadata"]["generation"]
            return False

        return self.wait(kind, name, namespace, ok, timeout, what=f"{type_}={status}")

    def events(self, namespace: str, name: str) -> list[Any]:
        return [e for e in self.core.list_namespaced_event(namespace).items if e.involved_object.name == name]


def condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}
