"""The offline CEL evaluator behind `modelsync validate`: it reads every rule the CRDs carry (a rule
it cannot evaluate must fail here, not pass silently offline), and decides the rules as the
apiserver does (tests/integration/test_cli_validate.py compares it with a real apiserver)."""
from __future__ import annotations

from typing import Any

import pytest

from modelsync import api, cel
from modelsync.crdgen import schema_of


def _all_rules() -> list[tuple[str, str]]:
    return [(kind, rule) for kind, model in api.SPEC_MODELS.items() for rule in cel.rules_in(schema_of(model))]


@pytest.mark.parametrize("kind, rule", _all_rules())
def test_every_spec_rule_of_every_crd_is_understood(kind: str, rule: str) -> None:
    cel.compile_rule(rule)


def test_transition_rules_are_left_to_the_apiserver() -> None:
    for rules in api.ROOT_RULES.values():
        for v in rules["x-kubernetes-validations"]:
            with pytest.raises(cel.Unsupported):
                cel.compile_rule(v["rule"])


@pytest.mark.parametrize("rule, value, expected", [
    ("!has(self.minMemory) || quantity(string(self.minMemory)).isLessThan(quantity('8Ei'))", {"minMemory": "9Ei"}, False),
    ("!has(self.minMemory) || quantity(string(self.minMemory)).isLessThan(quantity('8Ei'))", {"minMemory": "7Ei"}, True),
    ("!has(self.minMemory) || quantity(string(self.minMemory)).isLessThan(quantity('8Ei'))", {}, True),
    ("quantity(string(self.cpu)).isInteger() && quantity(string(self.cpu)).asInteger() >= 1", {"cpu": "1500m"}, False),
    ("quantity(string(self.cpu)).isInteger() && quantity(string(self.cpu)).asInteger() >= 1", {"cpu": 2}, True),
    ("quantity(string(self.m)).asInteger() % 1048576 == 0", {"m": "8Gi"}, True),
    ("quantity(string(self.a)).compareTo(quantity(string(self.b))) >= 0", {"a": "1Gi", "b": "1024Mi"}, True),
    ("self.r.all(x, self.r.exists_one(y, y.name == x.name))", {"r": [{"name": "a"}, {"name": "a"}]}, False),
    ("self.r.all(x, self.r.exists_one(y, y.name == x.name))", {"r": [{"name": "a"}, {"name": "b"}]}, True),
    ("bytes(self.t).size() <= 3", {"t": "éé"}, False),
    ("self.t.size() <= 3", {"t": "éé"}, True),
    ("self.d.matches(r'^[0-9]+(ms|s)$') && duration(self.d) <= duration('10m')", {"d": "700s"}, False),
    ("self.d.matches(r'^[0-9]+(ms|s)$') && duration(self.d) >= duration('100ms')", {"d": "100ms"}, True),
    ("self.backend != 'zstack' || has(self.zstack)", {"backend": "zstack"}, False),
    ("self.x == 1 ? true : false", {"x": 1}, True),
])
def test_rules_decide_as_the_apiserver_does(rule: str, value: Any, expected: bool) -> None:
    assert cel.evaluate(cel.compile_rule(rule), {"self": value}) is expected


def test_defaults_are_applied_before_the_rules() -> None:
    schema = schema_of(api.SPEC_MODELS["Model"])
    spec = cel.with_defaults(schema, {"registries": [{"name": "z"}, {"name": "z", "kind": "ModelRegistry"}]})
    assert spec["registries"][0]["kind"] == "ModelRegistry"
    found = cel.check(schema, spec, "spec")
    assert [(v.field, v.message) for v in found] == [("spec", "spec.registries must not name the same registry twice")]


def test_an_invalid_quantity_fails_the_rule_as_the_apiserver_reports_it() -> None:
    schema = schema_of(api.SPEC_MODELS["Model"])
    found = cel.check(schema, {"registries": [{"name": "z"}], "gpu": {"minMemory": "lots"}}, "spec")
    on_gpu = [v for v in found if v.field == "spec.gpu"]
    assert on_gpu and all(v.message.startswith("quantities must match the regular expression") and
                          "evaluating rule: spec.gpu.minMemory" in v.message for v in on_gpu)


def test_unsupported_cel_is_refused_when_read() -> None:
    with pytest.raises(cel.Unsupported):
        cel.compile_rule("self.x.map(y, y + 1).size() == 1")
    with pytest.raises(cel.Unsupported):
        cel.compile_rule("url(self.x).getHost() == 'a'")
