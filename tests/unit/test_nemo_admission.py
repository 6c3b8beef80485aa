"""What admission (api.py: the CRD's source and the core's parser) knows of NeMo's published limits."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from modelsync import api
from modelsync.vendors.nemo import schema as nemo_schema

CRD = Path(__file__).resolve().parents[2] / "crds" / "modelsync.io_models.yaml"


def parse(nemo: dict[str, Any]) -> api.ModelSpec:
    return api.ModelSpec.model_validate({"registries": [{"name": "r"}], "nemo": nemo})


@pytest.mark.parametrize("url", ["nim:8000/v1", "/v1/chat", "nim.example.com", "http://", "http://h x/"])
def test_api_endpoint_url_must_be_absolute(url: str) -> None:
    """NeMo's APIEndpointData.url is a pydantic AnyUrl: a relative one is refused, naming the field."""
    with pytest.raises(pydantic.ValidationError) as ei:
        parse({"api_endpoint": {"url": url, "model_id": "m"}})
    assert "spec.nemo.api_endpoint.url:" in api.describe_validation_error(ei.value)
    assert "absolute URL" in api.describe_validation_error(ei.value)


@pytest.mark.parametrize("url", ["http://nim:8000/v1", "https://build.nvidia.com/v1?x=1", "http://[fd00::1]:80/"])
def test_absolute_urls_admitted(url: str) -> None:
    assert parse({"api_endpoint": {"url": url}}).nemo.api_endpoint.url == url  # type: ignore[union-attr]


def test_the_crd_carries_the_same_rule() -> None:
    """The CEL rule and the Python check read one pattern (RE2 and re alike)."""
    crd = yaml.safe_load(CRD.read_text())
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    url = props["nemo"]["properties"]["api_endpoint"]["properties"]["url"]
    (rule,) = url["x-kubernetes-validations"]
    assert nemo_schema.NEMO_URL_PATTERN in rule["rule"] and rule["message"] == nemo_schema.NEMO_URL_MESSAGE
    assert re.fullmatch(nemo_schema.NEMO_URL_PATTERN[1:-1], "http://nim:8000/v1")
    assert "required" not in props["nemo"]["properties"]["api_endpoint"]  # {} empties it in NeMo


def test_empty_values_admitted_for_what_nemo_can_empty() -> None:
    """Empty means empty: the CRD admits the empty values NeMo's PATCH applies."""
    spec = parse({"api_endpoint": {}, "prompt": {}, "ownership": {}, "custom_fields": {},
                  "model_providers": [], "base_model": ""})
    assert spec.nemo is not None and spec.nemo.api_endpoint is not None
    assert spec.nemo.api_endpoint.model_dump(exclude_none=True) == {}


def test_head_type_still_admitted_for_stored_objects() -> None:
    """Objects stored with head_type stay valid (the backend reports it as not settable)."""
    spec = {"base_num_parameters": 1, "ffn_hidden_size": 1, "hidden_size": 1, "num_attention_heads": 1,
            "num_kv_heads": 1, "num_layers": 1, "vocab_size": 1, "checkpoint_model_name": "c", "family": "f",
            "precision": "bf16", "gated_mlp": True, "tied_embeddings": False, "head_type": "causal_lm"}
    assert parse({"spec": spec}).nemo.spec.head_type == "causal_lm"  # type: ignore[union-attr]
