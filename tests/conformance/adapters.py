"""What the conformance suite needs to know of each registry: one small adapter per vendor.

The scenarios (``test_contract.py`` here, ``tests/integration/test_conformance.py`` end to end) are
written once against :class:`Adapter`; an adapter says how to start the vendor's simulator, which
connection settings and credentials reach it, a minimal valid spec, and how to look at and change
the registry behind ModelSync's back (count its entries, put an entry that is not ours, remove one).
Backends and simulators are reached only through their tables (:func:`modelsync.backends.make_backend`,
:func:`modelsync.simulators.simulator_module`), never by a vendor's module path.

A vendor listed in :data:`modelsync.vendors.VENDORS` without an adapter fails
``test_every_vendor_has_an_adapter``: a new registry gets the whole suite by adding one here.
"""
from __future__ import annotations

import copy
import dataclasses
import uuid
from typing import Any, ClassVar, Protocol

import httpx

from modelsync import api
from modelsync.backends.base import RegistryConnection, Resource


class Served(Protocol):
    """A running simulator: its URL and its aiohttp app (the simulator's state for in-process ones)."""

    url: str
    app: Any


@dataclasses.dataclass(frozen=True)
class Scope:
    """One test's corner of a registry: the names it makes start with ``prefix``, so a registry shared
    between tests (the real MLflow server) is counted per test."""

    prefix: str
    namespace: str

    @staticmethod
    def new() -> "Scope":
        tag = uuid.uuid4().hex[:8]
        return Scope(prefix=f"c{tag}-", namespace=f"conf-{tag}")


class Adapter:
    """One registry as the suite drives it. Subclasses set the class attributes and the hooks."""

    #: spec.backend
    vendor: ClassVar[str]
    #: the pytest id (a vendor may be run in more than one flavour, e.g. Instill's two API generations)
    id: ClassVar[str]
    #: whether the registry has a counterpart for ModelService (the backend's ``kinds`` must agree)
    service: ClassVar[bool] = False
    #: whether an entry that is not ours under the name a resource asks for makes that resource
    #: NameTaken (False: the registry allows one name twice, so ours is a second, separate entry)
    exclusive_names: ClassVar[bool] = True
    #: the ``"METHOD /path"`` prefix of the request that creates a Model (the lost-reply knob's match)
    create_match: ClassVar[str]
    #: the spec field that names the registry entry (what a NameTaken message tells the user to change)
    name_field: ClassVar[str]
    #: pytest fixtures the simulator needs (their values reach :meth:`options`)
    fixtures: ClassVar[tuple[str, ...]] = ()

    # -- the simulator and the connection

    def options(self, fixtures: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the simulator's ``create_app``."""
        return {}

    def credentials(self) -> dict[str, str]:
        return {}

    def settings(self, scope: Scope) -> dict[str, Any]:
        """``spec.<vendor>`` of the ModelRegistry (and ``RegistryConnection.settings``)."""
        return {}

    def connection(self, served: Served, scope: Scope, registry: str = "reg") -> RegistryConnection:
        return RegistryConnection(key=f"ModelRegistry/{scope.namespace}/{registry}", name=registry,
                                  kind="ModelRegistry", backend=self.vendor, endpoint=served.url,
                                  credentials=self.credentials(), settings=self.settings(scope), timeout=30.0)

    # -- specs

    def model_spec(self) -> dict[str, Any]:
        """A minimal valid Model spec (without ``registries``)."""
        return {}

    def changed(self, spec: dict[str, Any]) -> dict[str, Any]:
        """``spec`` with a change every registry can take in place (the description)."""
        return {**spec, "description": "changed by the conformance suite"}

    def named(self, spec: dict[str, Any], name: str) -> dict[str, Any]:
        """``spec`` asking for the registry entry named ``name``."""
        raise NotImplementedError

    def service_spec(self) -> dict[str, Any] | None:
        """A minimal valid ModelService spec, or None when the registry has no counterpart."""
        return None

    def resource(self, scope: Scope, spec: dict[str, Any], *, kind: str = "Model", name: str = "llama",
                 uid: str | None = None, registry: str = "reg") -> Resource:
        parsed = api.parse_spec(kind, {"registries": [{"name": registry}], **spec})
        return Resource(kind=kind, name=name, namespace=scope.namespace, uid=uid or str(uuid.uuid4()),  # type: ignore[arg-type]
                        generation=1, spec=parsed)

    # -- the registry behind ModelSync's back

    def entries(self, served: Served, scope: Scope) -> list[str]:
        """The ids (what ``status.registries[].externalId`` records) of the Models the registry holds
        in this test's scope."""
        raise NotImplementedError

    def put_foreign(self, served: Served, scope: Scope, name: str) -> str:
        """Make an entry named ``name`` as someone else would (no ModelSync marker); its id."""
        raise NotImplementedError

    def snapshot(self, served: Served, external_id: str) -> Any:
        """The entry as the registry holds it (compared to tell that nothing touched it)."""
        raise NotImplementedError

    def remove(self, served: Served, external_id: str) -> None:
        """Delete the entry behind ModelSync's back."""
        raise NotImplementedError


# ---------------------------------------------------------------- the vendors


class ZStack(Adapter):
    vendor = "zstack"
    id = "zstack"
    service = True
    exclusive_names = False  # ZStack names are not unique: an entry is its uuid, derived from the resource
    create_match = "POST /zstack/v1/ai/models"
    name_field = "spec.zstack.name"
    CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
    PASSWORD = "conformance-Pa55"

    def options(self, fixtures: dict[str, Any]) -> dict[str, Any]:
        return {"account": "admin", "password": self.PASSWORD, "model_center_uuid": self.CENTER}

    def credentials(self) -> dict[str, str]:
        return {"accountName": "admin", "password": self.PASSWORD}

    def settings(self, scope: Scope) -> dict[str, Any]:
        return {"modelCenterUuid": self.CENTER}

    def model_spec(self) -> dict[str, Any]:
        return {"installPath": "/models/conformance"}

    def named(self, spec: dict[str, Any], name: str) -> dict[str, Any]:
        return {**spec, "zstack": {**spec.get("zstack", {}), "name": name}}

    def service_spec(self) -> dict[str, Any] | None:
        return {"config": "services: []\n", "resources": {"cpu": 1, "memory": "1Gi"},
                "startCommand": "python3 -m vllm.entrypoints.openai.api_server",
                "zstack": {"installPath": "/opt/vllm"}}

    def entries(self, served: Served, scope: Scope) -> list[str]:
        return list(served.app["zstack"].models)

    def put_foreign(self, served: Served, scope: Scope, name: str) -> str:
        reply = served.app["zstack"].add_model(
            {"param": {"name": name, "installPath": "/theirs", "modelCenterUuid": self.CENTER}})
        return str(reply["inventory"]["uuid"])

    def snapshot(self, served: Served, external_id: str) -> Any:
        return copy.deepcopy(served.app["zstack"].model_inventory(external_id))

    def remove(self, served: Served, external_id: str) -> None:
        served.app["zstack"].delete_model(external_id)


class Nemo(Adapter):
    vendor = "nemo"
    id = "nemo"
    MODELS = "/apis/models/v2/workspaces/default/models"
    create_match = f"POST {MODELS}"
    name_field = "spec.nemo.name"

    def settings(self, scope: Scope) -> dict[str, Any]:
        return {"workspace": "default"}

    def named(self, spec: dict[str, Any], name: str) -> dict[str, Any]:
        return {**spec, "nemo": {**spec.get("nemo", {}), "name": name}}

    def entries(self, served: Served, scope: Scope) -> list[str]:
        return list(served.app["nemo"].models.get("default", {}))

    def put_foreign(self, served: Served, scope: Scope, name: str) -> str:
        body = {"name": name, "description": "someone else's", "custom_fields": {"owner": "team-b"}}
        httpx.post(served.url + self.MODELS, json=body, timeout=10).raise_for_status()
        return name

    def snapshot(self, served: Served, external_id: str) -> Any:
        reply = httpx.get(f"{served.url}{self.MODELS}/{external_id}", timeout=10)
        reply.raise_for_status()
        return reply.json()

    def remove(self, served: Served, external_id: str) -> None:
        httpx.delete(f"{served.url}{self.MODELS}/{external_id}", timeout=10).raise_for_status()


class Instill(Adapter):
    """Instill in one generation of its model API (the simulator's ``generation``)."""

    vendor = "instill"
    TOKEN = "instill_sk_conformance"
    MODELS = "/v1alpha/namespaces/local/models"
    create_match = f"POST {MODELS}"
    name_field = "spec.instill.id"
    generation: ClassVar[str]
    INSTILL = {"modelDefinition": "container", "configuration": {}, "task": "TASK_CHAT", "region": "REGION_LOCAL",
               "hardware": "CPU"}
    #: a create body both generations take, as someone else's tooling sends it
    WIRE = {"modelDefinition": "model-definitions/container", "configuration": {}, "task": "TASK_CHAT",
            "visibility": "VISIBILITY_PRIVATE", "region": "REGION_LOCAL", "hardware": "CPU", "readme": "# theirs"}

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.TOKEN}"}

    def options(self, fixtures: dict[str, Any]) -> dict[str, Any]:
        return {"token": self.TOKEN, "generation": self.generation}

    def credentials(self) -> dict[str, str]:
        return {"token": self.TOKEN}

    def settings(self, scope: Scope) -> dict[str, Any]:
        return {"namespace": "local"}

    def model_spec(self) -> dict[str, Any]:
        return {"instill": dict(self.INSTILL)}

    def named(self, spec: dict[str, Any], name: str) -> dict[str, Any]:
        return {**spec, "instill": {**spec.get("instill", {}), "id": name}}

    def entries(self, served: Served, scope: Scope) -> list[str]:
        return [model_id for (ns, model_id) in served.app["instill"].models if ns == "local"]

    def put_foreign(self, served: Served, scope: Scope, name: str) -> str:
        # Legacy takes the id from the body; AIP makes its own and finds the model by slug
        body = {"id": name, "displayName": "theirs", "slug": name, **self.WIRE}
        reply = httpx.post(served.url + self.MODELS, json=body, headers=self._auth(), timeout=10)
        reply.raise_for_status()
        return str(reply.json()["model"]["id"])

    def snapshot(self, served: Served, external_id: str) -> Any:
        reply = httpx.get(f"{served.url}{self.MODELS}/{external_id}", params={"view": "VIEW_FULL"},
                          headers=self._auth(), timeout=10)
        reply.raise_for_status()
        return reply.json()

    def remove(self, served: Served, external_id: str) -> None:
        httpx.delete(f"{served.url}{self.MODELS}/{external_id}", headers=self._auth(), timeout=10).raise_for_status()


class InstillLegacy(Instill):
    id = "instill-legacy"
    generation = "legacy"


class InstillAip(Instill):
    id = "instill-aip"
    generation = "aip"


class Mlflow(Adapter):
    """The real MLflow server (one per session, tests/conftest.py) behind the fault proxy; each test's
    registered models carry its own name prefix (the registry's ``namePrefix``)."""

    vendor = "mlflow"
    id = "mlflow"
    API = "/api/2.0/mlflow"
    create_match = f"POST {API}/registered-models/create"
    name_field = "spec.mlflow.name"
    fixtures = ("mlflow_server",)

    def options(self, fixtures: dict[str, Any]) -> dict[str, Any]:
        return {"upstream": fixtures["mlflow_server"]}

    def settings(self, scope: Scope) -> dict[str, Any]:
        return {"namePrefix": scope.prefix}

    def model_spec(self) -> dict[str, Any]:
        return {"installPath": "hf://Qwen/Qwen3-8B"}  # a version as well as the registered model

    def named(self, spec: dict[str, Any], name: str) -> dict[str, Any]:
        return {**spec, "mlflow": {**spec.get("mlflow", {}), "name": name}}

    def _call(self, served: Served, method: str, path: str, **kw: Any) -> Any:
        reply = httpx.request(method, f"{served.url}{self.API}{path}", timeout=30, **kw)
        reply.raise_for_status()
        return reply.json()

    def entries(self, served: Served, scope: Scope) -> list[str]:
        names: list[str] = []
        token = ""
        while True:
            params = {"filter": f"name LIKE '{scope.prefix}%'", "max_results": "100"}
            if token:
                params["page_token"] = token
            body = self._call(served, "GET", "/registered-models/search", params=params)
            names += [m["name"] for m in body.get("registered_models") or []]
            token = body.get("next_page_token") or ""
            if not token:
                return names

    def put_foreign(self, served: Served, scope: Scope, name: str) -> str:
        self._call(served, "POST", "/registered-models/create", json={"name": name, "description": "someone else's"})
        return name

    def snapshot(self, served: Served, external_id: str) -> Any:
        return self._call(served, "GET", "/registered-models/get", params={"name": external_id})["registered_model"]

    def remove(self, served: Served, external_id: str) -> None:
        self._call(served, "DELETE", "/registered-models/delete", json={"name": external_id})


#: every adapter the suite runs, one pytest parameter each
ADAPTERS: tuple[Adapter, ...] = (ZStack(), Nemo(), InstillLegacy(), InstillAip(), Mlflow())
