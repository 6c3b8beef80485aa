"""deploy/ as users install it: `kubectl apply -k deploy/` on an empty cluster (its own control
plane, without CRDs: the kustomization brings them), the operator pod admitted under Pod Security
"restricted", the ServiceAccount's permissions judged by the real authorizer, and the optional
ServiceMonitor component."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from modelsync.testing import ControlPlane

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NS = "modelsync-system"
SA = f"system:serviceaccount:{NS}:modelsync"


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    with ControlPlane() as plane:  # no CRDs: deploy/ installs them
        yield plane


@pytest.fixture(scope="module")
def installed(cp: ControlPlane) -> subprocess.CompletedProcess[str]:
    r = cp.kubectl_run("apply", "-k", str(ROOT / "deploy"))
    cp.kubectl_run("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    return r


def _built(path: Path, cp: ControlPlane) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(cp.kubectl_run("kustomize", str(path)).stdout) if d]


def _find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name))


def test_crds_kustomization_lists_every_generated_crd() -> None:
    listed = yaml.safe_load((ROOT / "crds" / "Kustomization").read_text())["resources"]
    assert listed == sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))


def test_apply_k_installs_everything_on_an_empty_cluster(cp: ControlPlane, installed: subprocess.CompletedProcess[str]) -> None:
    out = installed.stdout
    for what in ("namespace/modelsync-system", "customresourcedefinition.apiextensions.k8s.io/models.modelsync.io",
                 "serviceaccount/modelsync", "clusterrole.rbac.authorization.k8s.io/modelsync",
                 "role.rbac.authorization.k8s.io/modelsync-leader-election", "deployment.apps/modelsync",
                 "service/modelsync-metrics", "poddisruptionbudget.policy/modelsync",
                 "networkpolicy.networking.k8s.io/modelsync"):
        assert f"{what} created" in out, out
    assert "PodSecurity" not in installed.stderr, installed.stderr  # the namespace warns on violating templates
    crds = cp.kubectl_run("get", "crd", "-o", "name").stdout.split()
    assert sorted(crds) == sorted(f"customresourcedefinition.apiextensions.k8s.io/{p}.modelsync.io" for p in
                                  ("models", "modelservices", "modelregistries", "clustermodelregistries"))
    ns = json.loads(cp.kubectl_run("get", "namespace", NS, "-o", "json").stdout)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # applying again, and a server-side dry run, change nothing and are admitted
    again = cp.kubectl_run("apply", "--dry-run=server", "-k", str(ROOT / "deploy"))
    assert "deployment.apps/modelsync unchanged (server dry run)" in again.stdout, again.stdout


def test_deployment_shape(cp: ControlPlane, installed: subprocess.CompletedProcess[str]) -> None:
    dep = json.loads(cp.kubectl_run("get", "deployment", "modelsync", "-n", NS, "-o", "json").stdout)
    # every replica is ready (leader or standby), so a rolling update one pod at a time proceeds
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": 9090}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health", "scheme": "HTTP"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics", "scheme": "HTTP"}
    assert {"--leader-election", "--liveness=http://0.0.0.0:8080/healthz", "--metrics-addr=:9090"} <= set(c["args"])
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c["env"]}
    assert env["POD_NAME"] == "metadata.name" and env["POD_NAMESPACE"] == "metadata.namespace"
    assert env["NODE_NAME"] == "spec.nodeName"  # the leader steps down while its Node is cordoned
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_disruption_budget_as_the_apiserver_stores_it(cp: ControlPlane,
                                                          installed: subprocess.CompletedProcess[str]) -> None:
    """The apiserver keeps unhealthyPodEvictionPolicy (it drops fields it does not serve): a pod that
    is not Ready stays evictable; of the two Ready pods, a drain evicts one at a time."""
    pdb = json.loads(cp.kubectl_run("get", "pdb", "modelsync", "-n", NS, "-o", "json").stdout)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_the_cluster_role_reads_nodes_with_get_only(cp: ControlPlane) -> None:
    role = _find(_built(ROOT / "deploy", cp), "ClusterRole", "modelsync")
    rules = [r for r in role["rules"] if "nodes" in r["resources"]]
    assert rules == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]


def test_selectors_and_ports_agree(cp: ControlPlane) -> None:
    objs = _built(ROOT / "deploy", cp)
    dep = _find(objs, "Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}

    def selects(selector: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    svc = _find(objs, "Service", "modelsync-metrics")
    assert selects(svc["spec"]["selector"])
    assert [(p["name"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("metrics", "metrics")]
    pdb = _find(objs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and selects(pdb["spec"]["selector"]["matchLabels"])
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    netpol = _find(objs, "NetworkPolicy")
    assert selects(netpol["spec"]["podSelector"]["matchLabels"]) and netpol["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = netpol["spec"]["ingress"]
    assert "from" not in rule and sorted(p["port"] for p in rule["ports"]) == sorted(ports.values())


@pytest.mark.parametrize("verb,resource,namespace,allowed", [
    ("watch", "models.modelsync.io", None, True),
    ("patch", "modelservices.modelsync.io/status", None, True),
    ("list", "clustermodelregistries.modelsync.io", None, True),
    ("get", "secrets", None, True),
    ("list", "secrets", None, True),
    ("watch", "secrets", None, True),
    ("patch", "secrets", None, True),  # the in-use finalizer only
    ("update", "secrets", None, False),
    ("delete", "secrets", None, False),
    ("patch", "modelregistries.modelsync.io", None, True),
    ("patch", "clustermodelregistries.modelsync.io", None, True),
    ("create", "events", None, True),
    ("patch", "events.events.k8s.io", None, True),
    ("create", "leases.coordination.k8s.io", NS, True),
    ("update", "leases.coordination.k8s.io", NS, True),
    ("watch", "leases.coordination.k8s.io", NS, True),
    ("create", "leases.coordination.k8s.io", "kube-system", False),
    ("delete", "leases.coordination.k8s.io", NS, False),
    ("get", "nodes", None, True),
    ("list", "nodes", None, False),
    ("watch", "nodes", None, False),
    ("patch", "nodes", None, False),
    ("update", "nodes", None, False),
    ("create", "secrets", None, False),
    ("delete", "models.modelsync.io", None, False),
    ("create", "pods", NS, False),
    ("update", "configmaps", NS, False),
])
def test_service_account_permissions(cp: ControlPlane, installed: subprocess.CompletedProcess[str],
                                     verb: str, resource: str, namespace: str | None, allowed: bool) -> None:
    scope = ["-n", namespace] if namespace else ["-A"]
    r = cp.kubectl_run("auth", "can-i", verb, resource, f"--as={SA}", *scope, check=False)
    assert (r.stdout.strip() == "yes") is allowed, f"{verb} {resource} in {namespace or 'all namespaces'}: {r.stdout}"


def _pod_from_template(cp: ControlPlane, mutate: Any = None) -> subprocess.CompletedProcess[str]:
    """Create a Pod from the Deployment's template (server-side dry run) in the restricted namespace."""
    dep = _find(_built(ROOT / "deploy", cp), "Deployment")
    template = dep["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "modelsync-psa-check", "namespace": NS, "labels": template["metadata"]["labels"]},
           "spec": template["spec"]}
    if mutate:
        mutate(pod["spec"])
    return cp.kubectl_run("create", "--dry-run=server", "-o", "name", "-f", "-", input=json.dumps(pod), check=False)


def test_operator_pod_is_admitted_under_restricted_pod_security(cp: ControlPlane,
                                                                installed: subprocess.CompletedProcess[str]) -> None:
    ns = json.loads(cp.kubectl_run("get", "namespace", NS, "-o", "json").stdout)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    r = _pod_from_template(cp)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "pod/modelsync-psa-check" and "PodSecurity" not in r.stderr


def _host_network(spec: dict[str, Any]) -> None:
    spec["hostNetwork"] = True


def _root_allowed(spec: dict[str, Any]) -> None:
    spec["securityContext"].pop("runAsNonRoot")
    spec["containers"][0]["securityContext"].pop("runAsNonRoot")


def _no_seccomp(spec: dict[str, Any]) -> None:
    spec["securityContext"].pop("seccompProfile")
    spec["containers"][0]["securityContext"].pop("seccompProfile")


def _keeps_capabilities(spec: dict[str, Any]) -> None:
    spec["containers"][0]["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}


@pytest.mark.parametrize("mutate,violation", [
    (_host_network, "host namespaces (hostNetwork=true)"),
    (_root_allowed, "runAsNonRoot != true"),
    (_no_seccomp, "seccompProfile"),
    (_keeps_capabilities, "unrestricted capabilities"),
])
def test_restricted_pod_security_refuses_a_weaker_pod(cp: ControlPlane, installed: subprocess.CompletedProcess[str],
                                                      mutate: Any, violation: str) -> None:
    """The check above can fail: the same template, weakened, is refused by the PodSecurity admission."""
    r = _pod_from_template(cp, mutate)
    assert r.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in r.stderr and violation in r.stderr, r.stderr


def test_a_privileged_operator_container_is_refused(cp: ControlPlane, installed: subprocess.CompletedProcess[str]) -> None:
    """(Refused before Pod Security is asked: this kube-apiserver runs without --allow-privileged.)"""
    r = _pod_from_template(cp, lambda spec: spec["containers"][0]["securityContext"].update(privileged=True))
    assert r.returncode != 0 and "securityContext.privileged: Forbidden" in r.stderr, r.stderr


SERVICEMONITOR_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def test_servicemonitor_component(cp: ControlPlane, installed: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    deploy = os.path.relpath(ROOT / "deploy", tmp_path)  # kustomize takes no absolute roots
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [deploy], "components": [f"{deploy}/components/servicemonitor"]}))
    objs = _built(tmp_path, cp)
    assert not any(o["kind"] == "ServiceMonitor" for o in _built(ROOT / "deploy", cp))  # not in the base
    sm = _find(objs, "ServiceMonitor")
    svc = _find(objs, "Service", "modelsync-metrics")
    assert sm["metadata"]["namespace"] == svc["metadata"]["namespace"] == NS
    assert all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
    assert [e["port"] for e in sm["spec"]["endpoints"]] == [p["name"] for p in svc["spec"]["ports"]]
    # without the monitoring.coreos.com CRD the apiserver has no such kind; with it, the overlay applies
    r = cp.kubectl_run("apply", "--dry-run=server", "-k", str(tmp_path), check=False)
    assert r.returncode != 0 and "ServiceMonitor" in r.stderr
    cp.kubectl_run("apply", "-f", "-", input=SERVICEMONITOR_CRD)
    cp.kubectl_run("wait", "--for=condition=Established", "--timeout=60s", "crd/servicemonitors.monitoring.coreos.com")
    r = cp.kubectl_run("apply", "--dry-run=server", "-k", str(tmp_path))
    assert "servicemonitor.monitoring.coreos.com/modelsync created (server dry run)" in r.stdout


def test_kubectl_apply_f_crds_ignores_the_kustomization(cp: ControlPlane) -> None:
    """README's `kubectl apply --server-side -f crds/` (and the test control plane) still work."""
    r = cp.kubectl_run("apply", "--server-side", "--dry-run=server", "-f", str(ROOT / "crds"))
    assert len(r.stdout.splitlines()) == len(list((ROOT / "crds").glob("*.yaml")))
