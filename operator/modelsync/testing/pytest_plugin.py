"""pytest fixtures on a real local control plane (loaded through the ``pytest11`` entry point).

* ``control_plane`` (session): etcd + kube-apiserver with ModelSync's CRDs
  applied (``$MODELSYNC_CRDS`` or the checkout's ``crds/``);
* ``kubeconfig`` (session): the admin kubeconfig path;
* ``k8s`` (session): a :class:`modelsync.testing.K8s` client.

The control plane is started only by tests that ask for these fixtures, and
always stopped at the end of the session.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:  # imported by the fixtures: the plugin loads in every pytest run
    from .controlplane import ControlPlane
    from .k8s import K8s


def _crds() -> Path | None:
    from .controlplane import _repo_root

    env = os.environ.get("MODELSYNC_CRDS")
    if env:
        return Path(env)
    root = _repo_root()
    return root / "crds" if root else None


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    from .controlplane import ControlPlane

    with ControlPlane(crds=_crds()) as cp:
        yield cp


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def k8s(kubeconfig: Path) -> K8s:
    from .k8s import K8s

    return K8s(str(kubeconfig))
