"""Reads from the Kubernetes API that the reconcile core needs: registries, Secrets,
and referenced ModelServices. The kubernetes client is synchronous, so every
call runs in a worker thread; kopf owns the event loop and all writes to the
resource being reconciled (its ``patch``), so this module only reads.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from typing import Any, Mapping, Protocol

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


def secret_version(uid: str | None, data: Mapping[str, str]) -> str:
    """A version of a Secret's content, for the registry fingerprint: it changes when the data
    does and only then (not when a finalizer, a label or an annotation is set, which bumps the
    resourceVersion), so the same credentials give the same fingerprint across restarts. An
    HMAC keyed by the Secret's uid, so the fingerprint in a resource's status cannot be checked
    against guessed passwords by someone who cannot read the Secret."""
    text = json.dumps(sorted(data.items()), separators=(",", ":"))
    return "data:" + hmac.new((uid or "").encode(), text.encode(), hashlib.sha256).hexdigest()[:32]


class Reader(Protocol):
    """What the reconcile core reads: :class:`KubeReader` from the apiserver, the controller's
    :class:`~modelsync.controller.Store` from its caches. Each raises :class:`NotFound` when absent."""

    async def registry(self, kind: str, name: str, namespace: str) -> Mapping[str, Any]: ...

    async def model_service(self, name: str, namespace: str) -> Mapping[str, Any]: ...

    async def secret_data(self, name: str, namespace: str) -> tuple[dict[str, str], str]: ...


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

        obj: Mapping[str, Any] = await self._call(get, f"{kind} {namespace + '/' if kind == 'ModelRegistry' else ''}{name}")
        return obj

    async def model_service(self, name: str, namespace: str) -> Mapping[str, Any]:
        obj: Mapping[str, Any] = await self._call(
            lambda: self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "modelservices", name),
            f"ModelService {namespace}/{name}",
        )
        return obj

    async def secret_data(self, name: str, namespace: str) -> tuple[dict[str, str], str]:
        """The Secret's decoded data, and its resourceVersion (for cache keys)."""
        secret = await self._call(lambda: self._core.read_namespaced_secret(name, namespace), f"Secret {namespace}/{name}")
        data = decode_secret_data(secret.data)
        return data, secret_version(secret.metadata.uid, data)

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

    def __init__(self, message: str, *, retry: bool, status: int = 0) -> None:
        super().__init__(message)
        self.retry = retry
        #: the apiserver's HTTP status, 0 when there was no answer
        self.status = status


def _namespace(namespace: str | None) -> Any:
    """kopf's NamespaceName of ``namespace``, or None for a cluster-scoped object."""
    from kopf._cogs.structs import references

    return references.NamespaceName(namespace) if namespace else None


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
        self._resources["Secret"] = references.Resource("", "v1", "secrets", kind="Secret", namespaced=True)
        self._posting: set[asyncio.Task[None]] = set()

    async def patch_status(self, kind: str, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge-patch ``status`` into the object's status subresource; the object as stored,
        or None when it is gone."""
        url = self._resources[kind].get_url(namespace=_namespace(namespace), name=name, subresource="status")
        return await self._merge_patch(url, {"status": dict(status)}, f"status of {kind} {namespace}/{name}")

    async def set_finalizers(self, kind: str, body: Mapping[str, Any], finalizers: list[str]) -> dict[str, Any] | None:
        """Replace metadata.finalizers, guarded by the resourceVersion it was read at (a 409
        means someone else changed the object: read again, decide again)."""
        meta = body.get("metadata") or {}
        url = self._resources[kind].get_url(namespace=_namespace(meta.get("namespace")), name=meta.get("name"))
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
        return await self._merge_patch(url, patch, f"finalizers of {kind} {meta.get('namespace')}/{meta.get('name')}")

    async def hold(self, kind: str, namespace: str, name: str, finalizer: str, held: bool,
                   known: Mapping[str, Any] | None = None) -> bool:
        """Add (``held``) or remove ``finalizer`` on any object of ``kind`` (a modelsync.io kind or
        Secret). True when the object ends as asked or is gone; False when it is being deleted and
        the finalizer is not there (none can be added then); :class:`WriteFailed` otherwise (a 409:
        read again, try again).

        Adding needs no read where it can go without one: on a Secret a strategic merge patch
        (``metadata.finalizers`` is a merged list on core kinds: the apiserver adds the one
        finalizer, whatever else is there); on a custom resource ``known``, the object as cached,
        gives the list and the resourceVersion the patch is guarded by. Only when that write is
        refused (a cache behind the apiserver's 409, a Secret being deleted) is the object read,
        and the write guarded by what was read."""
        url = self._resources[kind].get_url(namespace=_namespace(namespace), name=name)
        what = f"finalizers of {kind} {namespace + '/' if namespace else ''}{name}"
        try:
            if held and kind == "Secret":
                await self._patch(url, {"metadata": {"finalizers": [finalizer]}}, what,
                                  "application/strategic-merge-patch+json")
                return True  # held, or gone (None)
            if held and known is not None:
                return await self._guarded(url, known, finalizer, held, what)
        except WriteFailed as exc:
            if exc.status == 0 or (exc.retry and exc.status != 409):
                raise  # no answer, 429, 5xx: the caller tries again later
        return await self._guarded(url, await self._read(url, what), finalizer, held, what)

    async def _read(self, url: str, what: str) -> dict[str, Any] | None:
        """The object at ``url`` as stored, None when there is none."""
        from kopf._cogs.clients import api, errors

        try:
            obj: dict[str, Any] = await api.get(url=url, settings=self.settings, logger=_log)
            return obj
        except errors.APINotFoundError:
            return None
        except errors.APIError as exc:
            raise WriteFailed(f"{what}: HTTP {exc.status or 0}", retry=True, status=exc.status or 0) from None
        except Exception as exc:  # connection errors after kopf's retries
            raise WriteFailed(f"{what}: {type(exc).__name__}", retry=True) from None

    async def _guarded(self, url: str, obj: Mapping[str, Any] | None, finalizer: str, held: bool, what: str) -> bool:
        """``finalizer`` added to or removed from ``obj``'s list, guarded by its resourceVersion."""
        if obj is None:
            return True
        meta = obj.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if (finalizer in finalizers) == held:
            return True
        if held and meta.get("deletionTimestamp"):
            return False
        wanted = [*finalizers, finalizer] if held else [f for f in finalizers if f != finalizer]
        patch = {"metadata": {"finalizers": wanted or None, "resourceVersion": meta.get("resourceVersion")}}
        await self._merge_patch(url, patch, what)
        return True

    async def _merge_patch(self, url: str, payload: Mapping[str, Any], what: str) -> dict[str, Any] | None:
        """One merge patch: the object as stored, None when it is gone, else :class:`WriteFailed`
        saying whether trying again can help (409, 429, 5xx, connection errors) or not."""
        return await self._patch(url, payload, what, "application/merge-patch+json")

    async def _patch(self, url: str, payload: Mapping[str, Any], what: str, content_type: str) -> dict[str, Any] | None:
        from kopf._cogs.clients import api, errors

        try:
            stored: dict[str, Any] | None = await api.patch(
                url=url, headers={"Content-Type": content_type}, payload=dict(payload),
                settings=self.settings, logger=_log)
            return stored
        except errors.APINotFoundError:
            return None
        except errors.APIError as exc:
            code = exc.status or 0
            raise WriteFailed(f"{what}: HTTP {code}", retry=code in (409, 429) or code >= 500, status=code) from None
        except Exception as exc:  # connection errors after kopf's retries
            raise WriteFailed(f"{what}: {type(exc).__name__}", retry=True) from None

    async def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about ``obj``, posted in the background by kopf's Event client with a
        few short retries (:data:`EVENT_BACKOFFS`). Best effort, as everywhere in Kubernetes: a
        namespace being deleted refuses new Events (403), which is logged at debug only (kopf's own
        poster retried each such Event for the operator's five minutes of API backoffs, an ERROR
        line per try)."""
        from kopf._cogs.clients import events
        from kopf._cogs.structs import bodies, references

        ref = bodies.build_object_reference(dict(obj))  # type: ignore[arg-type]
        task = asyncio.create_task(events.post_event(
            ref=ref, type=type_, reason=reason, message=message[:1024], resource=references.Resource("", "v1", "events", namespaced=True),
            settings=self.settings, logger=_EventLog(_log, {}), backoffs=EVENT_BACKOFFS))
        self._posting.add(task)
        task.add_done_callback(self._posted)

    def _posted(self, task: "asyncio.Task[None]") -> None:
        self._posting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.debug("posting an Event failed: %r", task.exception())


#: the waits between tries of one Event post (kopf retries 403, 429, 5xx and connection errors)
EVENT_BACKOFFS = (0.5, 1.0, 2.0)


class _EventLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger handed to kopf's Event client: its per-attempt request errors are debug lines,
    and a refusal because the namespace is being deleted is too; any other failure to post an
    Event stays a warning."""

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        text = str(msg)
        if level >= logging.ERROR or "being terminated" in text or "is terminating" in text:
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)
