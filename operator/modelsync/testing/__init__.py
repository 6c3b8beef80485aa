"""Test helpers for ModelSync and for users' own tests, like ``kopf.testing``.

* :class:`ControlPlane`: a real etcd + kube-apiserver on loopback;
* :class:`OperatorProcess`: ``python -m modelsync`` as a subprocess against it;
* the pytest plugin (:mod:`modelsync.testing.pytest_plugin`, loaded automatically)
  gives the fixtures ``control_plane``, ``kubeconfig`` and ``k8s``.
"""
from .controlplane import ControlPlane, ensure_binaries
from .operator import OperatorProcess
from .k8s import K8s

__all__ = ["ControlPlane", "OperatorProcess", "K8s", "ensure_binaries"]
