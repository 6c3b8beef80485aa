"""Schema primitives shared by :mod:`modelsync.api` and every vendor's CRD section.

The base model (frozen, refusing unknown keys, attribute docstrings as the CRD's descriptions),
CEL rules as ``x-kubernetes-validations``, bounded free text, Kubernetes quantities and the
registries' integer ranges. A vendor's ``schema`` module imports these, never :mod:`modelsync.api`
(which imports the vendors' sections to build the specs).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Union

from kubernetes.utils import parse_quantity
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

#: Kubernetes' own quantity grammar (resource.Quantity).
QUANTITY_PATTERN = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
Quantity = Union[int, str]  # rendered as x-kubernetes-int-or-string with QUANTITY_PATTERN
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"  # a key of a Secret's data

#: the registries' integer ranges: Java Integer / Long, int32 / int64 wire types
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def rules(*entries: tuple[str, ...]) -> dict[str, Any]:
    """CEL admission rules as the CRD's x-kubernetes-validations.

    Each entry is (rule, message) or (rule, message, fieldPath, reason): a fieldPath such as
    ``.credentialsSecretRef.namespace`` makes the apiserver name that field in its error, and a
    reason (FieldValueRequired, FieldValueForbidden, ...) sets the error's kind.
    """
    keys = ("rule", "message", "fieldPath", "reason")
    return {"x-kubernetes-validations": [dict(zip(keys, e)) for e in entries]}


def _utf8_at_most(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise ValueError(f"must be at most {limit} bytes in UTF-8, not {size}")
        return value
    return AfterValidator(check)


def text(max_bytes: int) -> Any:
    """Free text of at most ``max_bytes`` bytes in UTF-8, checked by pydantic and by CEL at
    admission (``maxLength`` counts characters, up to 4 bytes each, so it is the same number:
    a cheap first bound that also keeps the CEL rule's cost estimate small)."""
    return Annotated[str, Field(max_length=max_bytes, json_schema_extra=rules(
        (f"bytes(self).size() <= {max_bytes}", f"must be at most {max_bytes} bytes in UTF-8"),
    )), _utf8_at_most(max_bytes)]


#: readme, introduction and config: 256 KiB each, so one of them can never push an object near
#: the apiserver's request limit (3 MiB) or etcd's object limit (1.5 MiB)
LONG_TEXT_BYTES = 262144
LongText = text(LONG_TEXT_BYTES)
Text64K = text(65536)
#: base64 images (logos)
Image128K = text(131072)


class Schema(BaseModel):
    """Base of every CRD schema model: frozen, unknown keys refused, attribute docstrings as descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


_Schema = Schema


def quantity(value: str | int | None) -> Decimal | None:
    """A Kubernetes quantity as an exact Decimal (``16Gi`` → 17179869184)."""
    if value is None:
        return None
    return Decimal(parse_quantity(value))


def quantity_int(value: str | int | None, *, field: str, unit: int = 1, unit_name: str = "") -> int | None:
    """A quantity as a whole number of ``unit``; ValueError naming ``field`` if it is not whole."""
    q = quantity(value)
    if q is None:
        return None
    n = q / unit
    if n != n.to_integral_value():
        raise ValueError(f"{field}: {value} is not a whole number of {unit_name or unit}")
    return int(n)
