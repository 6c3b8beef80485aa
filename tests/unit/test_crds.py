"""crds/ is generated from api.py: it must be current, and every field must be explained."""
from __future__ import annotations

import ipaddress
import random
from pathlib import Path
from typing import Any, Iterator

import pydantic
import pytest
import yaml

from modelsync import api, crdgen

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_crds_are_generated_from_api_models() -> None:
    rendered = crdgen.render()
    on_disk = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert set(on_disk) == set(rendered)
    for name, text in rendered.items():
        assert on_disk[name] == text, f"crds/{name} is stale: run `make crds`"


def _fields(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, sub in (schema.get("properties") or {}).items():
        yield f"{path}.{name}", sub
        yield from _fields(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _fields(schema["items"], f"{path}[]")


def test_every_spec_and_status_field_has_a_description() -> None:
    missing = []
    for name, text in crdgen.render().items():
        crd = yaml.safe_load(text.split("\n", 1)[1])
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in ("spec", "status"):
            for path, sub in _fields(root["properties"][part], part):
                if not sub.get("description"):
                    missing.append(f"{name}: {path}")
    assert not missing, missing


def test_quantities_are_int_or_string_checked_by_cel() -> None:
    crd = yaml.safe_load(crdgen.render()["modelsync.io_models.yaml"].split("\n", 1)[1])
    gpu = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["gpu"]
    mem = gpu["properties"]["minMemory"]
    assert mem["x-kubernetes-int-or-string"] is True
    assert any("isQuantity" in r["rule"] for r in mem["x-kubernetes-validations"])


# ---------------------------------------------------------------- the rules both pydantic and the CRDs carry

def _spec(kind: str) -> dict[str, Any]:
    return yaml.safe_load(crdgen.render()[f"modelsync.io_{crdgen_plural(kind)}.yaml"].split("\n", 1)[1])[
        "spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def crdgen_plural(kind: str) -> str:
    return next(e["plural"] for e in crdgen.KINDS if e["kind"] == kind)


def _refused(kind: str, spec: dict[str, Any]) -> str:
    """The operator's message for a spec pydantic refuses (fails the test if it is admitted)."""
    with pytest.raises(pydantic.ValidationError) as info:
        api.parse_spec(kind, spec)
    return api.describe_validation_error(info.value)


def _registry(**spec: Any) -> dict[str, Any]:
    return {"backend": "nemo", "endpoint": "http://nemo.example.com", **spec}


BAD_ENDPOINTS = [
    "https://user:pass@registry.example.com", "https://user@registry.example.com", "http://user:@10.0.0.1:80",
    "http://registry.example.com/a\x00b", "http://registry.example.com/a\x1fb", "http://registry.example.com/\x7f",
    "http://registry.example.com\n", "http://registry\t.example.com", "http://registry.example.com/a b",
    "http://registry.example.com:65536", "http://registry.example.com:0", "http://registry.example.com:99999",
    "http://registry.example.com:", "http://[::1", "http://::1]", "http://[::1]]", "http://[[::1]", "http://[::1:80",
    "http://[12345::1]", "http://[1:2:3:4:5:6:7:8:9]", "http://999.1.1.1", "http://-registry.example.com",
    "ftp://registry.example.com", "registry.example.com", "http://", "HTTP://registry.example.com",
    "http://registry.example.com?x=1", "http://registry.example.com/caf\u00e9",
]
GOOD_ENDPOINTS = [
    "http://x", "http://localhost:8080", "https://zstack.example.com:8080", "http://127.0.0.1:9",
    "http://[::1]:8080", "http://[::1]", "https://[fd00:10:96::a]:65535/api", "http://[::ffff:10.0.0.1]:1",
    "http://[2001:db8:0:0:0:0:2:1]", "https://nemo.ml.svc.cluster.local.:443/base/path?tenant=a",
    "http://10.96.0.12:8000/", "http://REGISTRY.Example.COM",
]


@pytest.mark.parametrize("kind", ["ModelRegistry", "ClusterModelRegistry"])
@pytest.mark.parametrize("endpoint", BAD_ENDPOINTS)
def test_bad_endpoints_are_refused_naming_the_field(kind: str, endpoint: str) -> None:
    assert _refused(kind, _registry(endpoint=endpoint)) == f"spec.endpoint: Value error, {api.ENDPOINT_MESSAGE}"


@pytest.mark.parametrize("endpoint", GOOD_ENDPOINTS)
def test_good_endpoints_are_admitted(endpoint: str) -> None:
    assert api.parse_spec("ModelRegistry", _registry(endpoint=endpoint)).endpoint == endpoint


def test_endpoint_ipv6_grammar_agrees_with_ipaddress() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        words = [rng.choice([0, 0, 1, rng.getrandbits(16)]) for _ in range(8)]
        address = ipaddress.IPv6Address(b"".join(w.to_bytes(2, "big") for w in words))
        for form in (address.compressed, address.exploded):
            assert api.parse_spec("ModelRegistry", _registry(endpoint=f"http://[{form}]:80"))
    for _ in range(20000):
        text = "".join(rng.choice("0123456789abcdef:::.") for _ in range(rng.randint(2, 40)))
        try:
            valid = bool(ipaddress.IPv6Address(text))
        except ValueError:
            valid = False
        admitted = bool(api._ENDPOINT_RE.fullmatch(f"http://[{text}]"))
        assert admitted == valid, text


def test_crd_endpoint_rule_is_the_pydantic_pattern() -> None:
    for kind in ("ModelRegistry", "ClusterModelRegistry"):
        endpoint = _spec(kind)["properties"]["endpoint"]
        assert "pattern" not in endpoint
        [rule] = endpoint["x-kubernetes-validations"]
        assert rule["rule"] == f"self.matches(r'{api.ENDPOINT_PATTERN}')"
        assert "'" not in api.ENDPOINT_PATTERN  # the CEL raw string must hold it as is
        assert rule["message"] == api.ENDPOINT_MESSAGE


@pytest.mark.parametrize("timeout", ["0s", "0ms", "0.0s", "0m", "99ms", "0.09s", "10.5m", "601s", "1000000m",
                                     "999999m", "30", "soon", "-1s", "1h", "1e3ms", " 30s", ""])
def test_bad_request_timeouts_are_refused_naming_the_field(timeout: str) -> None:
    message = _refused("ModelRegistry", _registry(requestTimeout=timeout))
    assert message.startswith("spec.requestTimeout: "), message
    assert "between 100ms and 10m" in message


@pytest.mark.parametrize("timeout,seconds", [("100ms", 0.1), ("0.1s", 0.1), ("500ms", 0.5), ("30s", 30.0),
                                             ("2m", 120.0), ("1.5m", 90.0), ("600s", 600.0), ("10m", 600.0)])
def test_request_timeouts_in_range_are_admitted(timeout: str, seconds: float) -> None:
    assert api.parse_spec("ModelRegistry", _registry(requestTimeout=timeout)).timeout_seconds() == seconds
    assert api.parse_spec("ModelRegistry", _registry()).timeout_seconds() == 30.0


def test_cluster_registry_names_the_secret_namespace() -> None:
    message = _refused("ClusterModelRegistry", _registry(credentialsSecretRef={"name": "creds"}))
    assert message == "spec.credentialsSecretRef.namespace: Field required", message
    message = _refused("ClusterModelRegistry", _registry(tls={"caSecretRef": {"name": "ca"}}))
    assert message == "spec.tls.caSecretRef.namespace: Field required", message
    spec = api.parse_spec("ClusterModelRegistry", _registry(
        credentialsSecretRef={"name": "creds", "namespace": "ml"}, tls={"caSecretRef": {"name": "ca", "namespace": "ml"}}))
    assert spec.credentialsSecretRef.namespace == "ml" and spec.tls.caSecretRef.namespace == "ml"
    assert spec.tls.caSecretRef.key == "ca.crt"


def test_model_registry_refuses_a_secret_namespace() -> None:
    for field, spec in [("spec.credentialsSecretRef.namespace", {"credentialsSecretRef": {"name": "c", "namespace": "ml"}}),
                        ("spec.tls.caSecretRef.namespace", {"tls": {"caSecretRef": {"name": "ca", "namespace": "ml"}}})]:
        message = _refused("ModelRegistry", _registry(**spec))
        assert message.startswith(f"{field}: Value error, must not be set: a ModelRegistry reads its Secrets"), message
    spec = api.parse_spec("ModelRegistry", _registry(credentialsSecretRef={"name": "c"}, tls={"caSecretRef": {"name": "ca"}}))
    assert spec.credentialsSecretRef.namespace is None and spec.tls.caSecretRef.namespace is None


def test_shared_registry_spec_reads_either_kind() -> None:
    """The base spec (what the operator reads a registry object with) takes both forms."""
    for ref in ({"name": "c"}, {"name": "c", "namespace": "ml"}):
        assert api.ModelRegistrySpec.model_validate(_registry(credentialsSecretRef=ref)).credentialsSecretRef == \
            api.SecretRef(**ref)


def test_crd_secret_namespace_rule_per_kind() -> None:
    cluster, local = _spec("ClusterModelRegistry")["properties"], _spec("ModelRegistry")["properties"]
    assert cluster["credentialsSecretRef"]["required"] == ["name", "namespace"]
    assert cluster["tls"]["properties"]["caSecretRef"]["required"] == ["name", "namespace"]
    for ref in (local["credentialsSecretRef"], local["tls"]["properties"]["caSecretRef"]):
        assert "required" not in ref or "namespace" not in ref["required"]
        [rule] = ref["x-kubernetes-validations"]
        assert rule["rule"] == "!has(self.namespace)" and rule["fieldPath"] == ".namespace"
        assert rule["reason"] == "FieldValueForbidden"


def _nemo_spec(**ints: int) -> dict[str, Any]:
    base = {"base_num_parameters": 8_000_000_000, "ffn_hidden_size": 14336, "hidden_size": 4096,
            "num_attention_heads": 32, "num_kv_heads": 8, "num_layers": 32, "vocab_size": 128256,
            "checkpoint_model_name": "m", "family": "llama", "precision": "bf16", "gated_mlp": True,
            "tied_embeddings": False}
    return {"registries": [{"name": "r"}], "nemo": {"spec": {**base, **ints}}}


REG = [{"name": "r"}]
OVER_RANGE = [
    ("Model", {"registries": REG, "gpu": {"recommendedCount": [1, 1025]}}, "spec.gpu.recommendedCount[1]"),
    ("Model", {"registries": REG, "gpu": {"recommendedCount": [0]}}, "spec.gpu.recommendedCount[0]"),
    ("Model", {"registries": REG, "zstack": {"size": 2**63}}, "spec.zstack.size"),
    ("Model", {"registries": REG, "zstack": {"size": -1}}, "spec.zstack.size"),
    ("Model", _nemo_spec(base_num_parameters=2**63), "spec.nemo.spec.base_num_parameters"),
    ("Model", _nemo_spec(ffn_hidden_size=2**31), "spec.nemo.spec.ffn_hidden_size"),
    ("Model", _nemo_spec(hidden_size=2**31), "spec.nemo.spec.hidden_size"),
    ("Model", _nemo_spec(num_attention_heads=2**31), "spec.nemo.spec.num_attention_heads"),
    ("Model", _nemo_spec(num_kv_heads=2**31), "spec.nemo.spec.num_kv_heads"),
    ("Model", _nemo_spec(num_layers=2**31), "spec.nemo.spec.num_layers"),
    ("Model", _nemo_spec(vocab_size=2**31), "spec.nemo.spec.vocab_size"),
    ("Model", _nemo_spec(context_size=2**31), "spec.nemo.spec.context_size"),
    ("Model", _nemo_spec(num_virtual_tokens=2**31), "spec.nemo.spec.num_virtual_tokens"),
    ("Model", _nemo_spec(minimum_gpus_all_weights=2**31), "spec.nemo.spec.minimum_gpus_all_weights"),
    ("Model", _nemo_spec(minimum_gpus_lora=2**31), "spec.nemo.spec.minimum_gpus_lora"),
    ("Model", _nemo_spec(num_layers=0), "spec.nemo.spec.num_layers"),
    ("ModelService", {"registries": REG, "ports": [8000, 65536]}, "spec.ports[1]"),
    ("ModelService", {"registries": REG, "ports": [0]}, "spec.ports[0]"),
    ("ModelService", {"registries": REG, "bootupTimeSeconds": 86401}, "spec.bootupTimeSeconds"),
]


@pytest.mark.parametrize("kind,spec,field", OVER_RANGE, ids=[c[2] + str(i) for i, c in enumerate(OVER_RANGE)])
def test_integers_out_of_range_are_refused_naming_the_field(kind: str, spec: dict[str, Any], field: str) -> None:
    message = _refused(kind, spec)
    assert message.startswith(f"{field}: Input should be"), message


def test_integers_at_their_bounds_are_admitted() -> None:
    api.parse_spec("Model", _nemo_spec(base_num_parameters=2**63 - 1, ffn_hidden_size=2**31 - 1, context_size=2**31 - 1,
                                       minimum_gpus_lora=0))
    api.parse_spec("Model", {"registries": REG, "zstack": {"size": 2**63 - 1}, "gpu": {"recommendedCount": [1, 1024]}})
    api.parse_spec("ModelService", {"registries": REG, "ports": [1, 65535], "bootupTimeSeconds": 86400})


def test_crd_integer_bounds() -> None:
    """int32 fields carry maximum 2^31-1; int64 ones say format int64 and no maximum (the apiserver
    keeps maximum as a float64, and 2^63-1 would round up and overflow into -2^63)."""
    ints = []
    for name, text in crdgen.render().items():
        root = yaml.safe_load(text.split("\n", 1)[1])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        ints += [(f"{name}: {p}", s) for p, s in _fields(root["properties"]["spec"], "spec") if s.get("type") == "integer"]
        ints += [(f"{name}: {p}[]", s["items"]) for p, s in _fields(root["properties"]["spec"], "spec")
                 if s.get("type") == "array" and s["items"].get("type") == "integer"]
    assert ints
    for path, schema in ints:
        assert "minimum" in schema, path
        if schema.get("format") == "int64":
            assert "maximum" not in schema, path
        else:
            assert 0 < schema["maximum"] <= api.INT32_MAX, path


@pytest.mark.parametrize("kind,field", [("Model", "readme"), ("ModelService", "readme"), ("ModelService", "config")])
def test_long_texts_are_bounded_in_bytes(kind: str, field: str) -> None:
    api.parse_spec(kind, {"registries": REG, field: "a" * 262144})
    api.parse_spec(kind, {"registries": REG, field: "\U0001F600" * 65536})
    message = _refused(kind, {"registries": REG, field: "\U0001F600" * 65537})
    assert message == f"spec.{field}: Value error, must be at most 262144 bytes in UTF-8, not 262148", message
    message = _refused(kind, {"registries": REG, field: "a" * 262145})
    assert message.startswith(f"spec.{field}: String should have at most 262144 characters"), message
    schema = _spec(kind)["properties"][field]
    assert schema["maxLength"] == 262144
    assert schema["x-kubernetes-validations"] == [
        {"rule": "bytes(self).size() <= 262144", "message": "must be at most 262144 bytes in UTF-8"}]


def test_every_spec_string_is_bounded() -> None:
    """Every string in a spec has a maxLength (or is an enum), free-form maps aside; the lists of
    strings named here are the ones still open (bounded only in their number of items, if at all)."""
    still_open = {"modelsync.io_modelservices.yaml: spec.command[]", "modelsync.io_modelservices.yaml: spec.args[]",
                  "modelsync.io_models.yaml: spec.nemo.model_providers[]"}
    unbounded = []
    for name, text in crdgen.render().items():
        root = yaml.safe_load(text.split("\n", 1)[1])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, sub in _fields(root["properties"]["spec"], "spec"):
            for p, s in ((path, sub), (f"{path}[]", sub.get("items") or {})):
                if s.get("type") == "string" and not ({"maxLength", "enum"} & set(s)):
                    unbounded.append(f"{name}: {p}")
    assert set(unbounded) == still_open, unbounded
