"""The CRD sections of MLflow: ``ModelRegistry.spec.mlflow`` and ``Model.spec.mlflow``.

Built on :mod:`modelsync.fields` (frozen models that refuse unknown keys, attribute docstrings as the
CRD's descriptions, CEL rules as ``x-kubernetes-validations``); :mod:`modelsync.api` places them in
the specs through :data:`~modelsync.vendors.mlflow.VENDOR`.

Limits are MLflow 3.17's (``mlflow/utils/validation.py`` and the SQL store's columns in
``mlflow/store/model_registry/dbmodels/models.py``): a registered model name of at most 256
characters without ``/`` or ``:``; tag keys of at most 250 characters of letters, digits, ``_ . - : /``
and spaces; registered model tag values of at most 5000 characters (the column); aliases of
letters, digits, ``_`` and ``-``, at most 255, neither ``latest`` nor ``v<digits>``.
"""
from __future__ import annotations

import re

from pydantic import ConfigDict, Field, field_validator

from ...fields import Schema as _Schema, rules

#: registered model names ModelSync writes: what MLflow accepts (no '/' or ':', not a relative path)
#: and nothing that needs quoting in a search filter (no quotes, backticks or backslashes)
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_. -]*$"
MAX_NAME = 256
#: a tag key MLflow accepts (``validate_param_and_metric_name``)
TAG_KEY_PATTERN = r"^[A-Za-z0-9_.\- :/]+$"
MAX_TAG_KEY = 250
#: registered_model_tags.value is a VARCHAR(5000)
MAX_TAG_VALUE = 5000
#: keys MLflow (``mlflow.``) and ModelSync (``modelsync.io/``) keep for themselves
RESERVED_TAG_PREFIXES = ("mlflow.", "modelsync.io/")
ALIAS_PATTERN = r"^[A-Za-z0-9_-]+$"
MAX_ALIAS = 255
#: a name prefix: the name's own characters
PREFIX_PATTERN = r"^[A-Za-z0-9_. -]*$"


class MlflowRegistrySettings(_Schema):
    """MLflow Model Registry settings (all optional)."""

    namePrefix: str | None = Field(default=None, max_length=128, pattern=PREFIX_PATTERN)
    """Prefix of the registered model names ModelSync derives (not of spec.mlflow.name), e.g.
    team-a. or a Unity Catalog catalog.schema. prefix."""


_RESERVED_MESSAGE = "must not start with mlflow. or modelsync.io/: MLflow and ModelSync keep those keys"


class MlflowTag(_Schema):
    """One tag of the registered model, in MLflow's own shape."""

    key: str = Field(min_length=1, max_length=MAX_TAG_KEY, pattern=TAG_KEY_PATTERN)
    """Tag key: at most 250 characters of letters, digits, _ . - : / and spaces; not starting with
    mlflow. or modelsync.io/."""
    value: str = Field(default="", max_length=MAX_TAG_VALUE)
    """Tag value, at most 5000 characters (MLflow's column)."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("!self.key.startsWith('mlflow.') && !self.key.startsWith('modelsync.io/')", _RESERVED_MESSAGE, ".key"),
    ))

    @field_validator("key")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith(RESERVED_TAG_PREFIXES):
            raise ValueError(_RESERVED_MESSAGE)
        return value


class MlflowModelSection(_Schema):
    """What only MLflow has for a model: the registered model's name, its own tags, and an alias
    that points at the version holding spec.installPath."""

    name: str | None = Field(default=None, max_length=MAX_NAME, pattern=NAME_PATTERN)
    """Registered model name; defaults to <namespace>-<name>-<hash8> (after the registry's namePrefix).
    Letters, digits, _, ., - and spaces, at most 256."""
    tags: list[MlflowTag] | None = Field(default=None, max_length=64)
    """Tags of the registered model, set as given; a tag removed from this list is left in MLflow."""
    alias: str | None = Field(default=None, max_length=MAX_ALIAS, pattern=ALIAS_PATTERN)
    """Alias (e.g. champion) that points at the model version whose source is spec.installPath; moved
    when a new installPath makes a new version. Letters, digits, _ and -; not latest, nor v<digits>."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("!has(self.tags) || self.tags.all(t, self.tags.exists_one(u, u.key == t.key))",
         "spec.mlflow.tags must not name the same key twice", ".tags"),
        ("!has(self.alias) || !self.alias.matches('^([lL][aA][tT][eE][sS][tT]|[vV][0-9]+)$')",
         "spec.mlflow.alias must not be latest or v<digits>: MLflow reserves them", ".alias"),
    ))

    @field_validator("tags")
    @classmethod
    def _unique(cls, value: list[MlflowTag] | None) -> list[MlflowTag] | None:
        keys = [t.key for t in value or []]
        if len(keys) != len(set(keys)):
            raise ValueError("must not name the same key twice")
        return value

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if value is not None and (value.lower() == "latest" or re.fullmatch(r"[vV][0-9]+", value)):
            raise ValueError("must not be latest or v<digits>: MLflow reserves them")
        return value
