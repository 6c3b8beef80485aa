"""Test helpers for ModelSync and for users' own tests, like ``kopf.testing``.

* :class:`ControlPlane`: a real etcd + kube-apiserver on loopback;
* :class:`OperatorProcess`: ``python -m modelsync`` as a subprocess against it;
* :func:`eventually`: wait for a state by polling it (:mod:`modelsync.testing.poll`);
* the pytest plugin (:mod:`modelsync.testing.pytest_plugin`, loaded automatically)
  gives the fixtures ``control_plane``, ``kubeconfig`` and ``k8s``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .controlplane import ControlPlane, ensure_binaries
    from .k8s import K8s
    from .operator import OperatorProcess
    from .poll import eventually

__all__ = ["ControlPlane", "OperatorProcess", "K8s", "ensure_binaries", "eventually"]
_WHERE = {"ControlPlane": ".controlplane", "ensure_binaries": ".controlplane", "OperatorProcess": ".operator",
          "K8s": ".k8s", "eventually": ".poll"}


def __getattr__(name: str) -> Any:
    """Imported on first use: the pytest plugin is loaded in every pytest run of an
    environment that has modelsync, and the control plane needs ``modelsync[testing]``
    (cryptography) only when a test asks for it."""
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
