"""`modelsync validate` against the real apiserver: for a corpus of bad manifests, every problem the
apiserver's server-side dry run refuses (schema and CEL rules alike) is reported offline on the
same field, and a CEL rule's refusal with the same message; good manifests pass both.

Its own control plane: nothing here needs the operator."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from modelsync import cli
from modelsync.testing import ControlPlane

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
API = "modelsync.io/v1alpha1"
ENDPOINT = "http://registry.example.com:8080"


def model(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Model", "metadata": {"name": "m"},
            "spec": {"registries": [{"name": "z"}], **spec}}


def service(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ModelService", "metadata": {"name": "s"},
            "spec": {"registries": [{"name": "z"}], **spec}}


def registry(kind: str = "ModelRegistry", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": "r"},
            "spec": {"backend": "nemo", "endpoint": ENDPOINT, **spec}}


BAD = {
    "gpu-min-memory-9Ei": model(gpu={"minMemory": "9Ei"}),
    "gpu-min-memory-zero": model(gpu={"minMemory": "0"}),
    "gpu-recommended-below-min": model(gpu={"minMemory": "16Gi", "recommendedMemory": "8Gi"}),
    "gpu-recommended-9Ei": model(gpu={"recommendedMemory": "9Ei"}),
    "registries-twice": model(registries=[{"name": "z"}, {"name": "z", "kind": "ModelRegistry"}]),
    "readme-too-long": model(readme="é" * 140000),
    "bad-quantity": model(gpu={"minMemory": "lots"}),
    "service-cpu-fraction": service(resources={"cpu": "1500m"}),
    "service-memory-not-mib": service(resources={"memory": "1000"}),
    "service-two-images-one-arch": service(images=[{"cpuArchitecture": "x86_64", "image": "a"},
                                                   {"cpuArchitecture": "x86_64", "image": "b"}]),
    "service-registries-twice": service(registries=[{"name": "z"}, {"name": "z"}]),
    "registry-zstack-without-settings": registry(backend="zstack", credentialsSecretRef={"name": "c"}),
    "registry-zstack-without-secret": registry(backend="zstack", zstack={"modelCenterUuid": "abc"}),
    "registry-secret-namespace": registry(credentialsSecretRef={"name": "c", "namespace": "other"}),
    "registry-endpoint-credentials": registry(endpoint="http://user:pw@registry.example.com"),
    "registry-timeout-too-long": registry(requestTimeout="11m"),
    "registry-bad-backend": registry(backend="other"),
    "cluster-registry-secret-without-namespace": registry("ClusterModelRegistry", credentialsSecretRef={"name": "c"}),
    "several-at-once": model(gpu={"minMemory": "9Ei", "recommendedMemory": "1Gi"},
                             registries=[{"name": "z"}, {"name": "z"}]),
}
GOOD = {
    "model": model(gpu={"minMemory": "16Gi", "recommendedMemory": "24Gi"}, installPath="/models/m"),
    "service": service(resources={"cpu": 2, "memory": "8Gi"}),
    "registry": registry(requestTimeout="45s"),
}
#: the kind of value the apiserver names before a message ("Invalid value: \"object\": ", "Forbidden: ")
_PREFIX = re.compile(r'^(?:Invalid value: (?:"[^"]*"|\S+): |Forbidden: |Required value: |Unsupported value: .*?: )')


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    with ControlPlane(crds=ROOT / "crds") as plane:
        plane.kubectl_run("create", "namespace", "v")
        yield plane


def apiserver_refusal(cp: ControlPlane, obj: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) of each cause the apiserver gives for refusing ``obj`` in a dry run."""
    ns = ["-n", "v"] if obj["kind"] != "ClusterModelRegistry" else []
    r = cp.kubectl_run("create", "--dry-run=server", *ns, "-f", "-", "-o", "name", input=json.dumps(obj), check=False)
    if r.returncode == 0:
        return []
    # kubectl prints the Status' causes as "* field: message" lines, or one line for one cause
    text = r.stderr
    causes = re.findall(r"^\* (\S+): (.*)$", text, re.M)
    if not causes:
        m = re.search(r'is invalid: (\S+): (.*)$', text, re.M)
        assert m, text
        causes = [(m.group(1), m.group(2))]
    # "<nil>: some validation rules were not checked because the object was invalid" is a note
    return [(field, _PREFIX.sub("", message).strip()) for field, message in causes if field != "<nil>"]


def offline(obj: dict[str, Any]) -> list[str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.validate(["-"], stdout=out, stderr=err, stdin=io.StringIO(yaml.safe_dump(obj)))
    lines = out.getvalue().splitlines()
    assert (code == 1) == bool(lines)
    prefix = f"<stdin>: {obj['kind']}/{obj['metadata']['name']}: "
    assert all(line.startswith(prefix) for line in lines), lines
    return [line[len(prefix):] for line in lines]


@pytest.mark.parametrize("name", sorted(BAD))
def test_validate_reports_what_the_apiserver_refuses(cp: ControlPlane, name: str) -> None:
    obj = BAD[name]
    refused = apiserver_refusal(cp, obj)
    assert refused, f"{name}: the apiserver admitted it"
    reported = offline(obj)
    fields = {line.split(": ", 1)[0] for line in reported}
    for field, message in refused:
        assert field in fields, f"{name}: the apiserver refuses {field} ({message}); validate said {reported}"
        if _is_rule(obj, message):  # a CEL rule: the same words
            assert f"{field}: {message}" in reported, (field, message, reported)
    assert fields == {f for f, _ in refused}, f"{name}: validate {reported}, apiserver {refused}"


def _is_rule(obj: dict[str, Any], message: str) -> bool:
    """Whether the message is one of the CRD's CEL rule messages."""
    return any(message == v.get("message") for v in _validations(cli._spec_schema(obj["kind"])))


def _validations(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from schema.get("x-kubernetes-validations") or []
    for sub in (schema.get("properties") or {}).values():
        yield from _validations(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _validations(schema[key])


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_manifests_pass_both(cp: ControlPlane, name: str) -> None:
    assert apiserver_refusal(cp, GOOD[name]) == []
    assert offline(GOOD[name]) == []


def test_a_cel_rule_is_reported_with_the_apiservers_field_and_message(cp: ControlPlane) -> None:
    """The issue's own example: gpu.minMemory 9Ei passed offline while the apiserver refused it."""
    (refused,) = apiserver_refusal(cp, BAD["gpu-min-memory-9Ei"])
    assert refused == ("spec.gpu", "spec.gpu.minMemory must be less than 8Ei (registries take the bytes as a 64-bit Long)")
    assert offline(BAD["gpu-min-memory-9Ei"]) == [": ".join(refused)]
