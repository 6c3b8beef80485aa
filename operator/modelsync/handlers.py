"""Every kopf registration, each a line into the controller.

kopf watches; :mod:`modelsync.controller` decides when to reconcile and the
reconcile core (:mod:`modelsync.reconcile`) what to do. The registrations are
``@kopf.on.event`` on purpose: kopf's change handlers keep their progress and a
diff-base copy of the spec in the object and write it on every try, which costs
apiserver writes per retry and per create and puts a second copy of a large
readme in the object. The controller's in-memory queue needs none of that.

Settings chosen on purpose (see kopf's docs on configuration):

* kopf posts no log records as Events (``posting.loggers = False``): the
  controller posts one (``kopf.event``) when an outcome changes, already scrubbed;
* ``persistence.finalizer`` is kopf's default marker, not ``modelsync.io/finalizer``:
  that one belongs to the controller (held while registry entries must be removed);
* API errors are retried every second for five minutes (kopf's default grows
  to 21 s steps), so changes made while the apiserver was away are seen within
  seconds of its return;
* the operator runs standalone (no peering objects): one replica with the
  ``Recreate`` strategy (deploy/), since two replicas would both write;
* httpx's and httpcore's loggers stay at WARNING: at INFO they print request
  URLs, and a URL may carry what it should not.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from .api import GROUP, VERSION
from .controller import REGISTRY_KINDS, RESOURCE_KINDS, Controller, Store
from .kube import KubeReader, KubeWriter, load_config
from .reconcile import Reconciler

#: seconds between drift checks of each resource against its registries
RESYNC_SECONDS = float(os.environ.get("MODELSYNC_RESYNC_SECONDS", "300"))
#: what deleting a resource does to its registry entries when its spec does not say (--default-deletion-policy)
DEFAULT_DELETION_POLICY = os.environ.get("MODELSYNC_DEFAULT_DELETION_POLICY", "Delete")
#: reconciles in flight at once, over all registries
WORKERS = int(os.environ.get("MODELSYNC_WORKERS", "32"))
PLURALS = {"Model": "models", "ModelService": "modelservices", "ModelRegistry": "modelregistries",
           "ClusterModelRegistry": "clustermodelregistries"}

for _name in ("httpx", "httpcore", "hpack"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # kopf logs every handler call of every object at INFO: at thousands of objects that
        # is most of the log and a good part of the CPU (--verbose brings them back)
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.posting.enabled = True  # for the controller's kopf.event() calls
    settings.posting.loggers = False  # log records are not Events
    settings.posting.reporting_component = "modelsync"
    settings.posting.event_name_prefix = "modelsync-"
    # modelsync.io/finalizer is the controller's own (held while registry entries must be
    # removed on delete); kopf must not take it for its marker, which it removes when no
    # kopf handler needs one
    settings.persistence.finalizer = "kopf.zalando.org/KopfFinalizerMarker"
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 5
    settings.watching.reconnect_backoff = 0.5
    # kopf gives up on a watch (and the operator stops) when these run out: 1-second steps
    # for five minutes see the apiserver's return at once and outlast a control-plane upgrade
    settings.networking.error_backoffs = [0.2, 0.5] + [1.0] * 300
    settings.networking.request_timeout = 30
    load_config()
    reader = KubeReader()
    controller = Controller(Reconciler(reader, default_deletion_policy=DEFAULT_DELETION_POLICY), KubeWriter(settings), workers=WORKERS, resync=RESYNC_SECONDS)
    controller.reconciler.reader = controller.reconciler.pool.reader = Store(controller, reader)
    memo.controller = controller


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    await memo.controller.stop()
    await memo.controller.reconciler.pool.aclose()


for _kind in (*RESOURCE_KINDS, *REGISTRY_KINDS):

    @kopf.on.event(GROUP, VERSION, PLURALS[_kind], id=f"watch-{_kind}")
    async def watch(event: kopf.RawEvent, memo: kopf.Memo, _kind: str = _kind, **_: Any) -> None:
        """Into the controller's cache and, if there is work, its queue."""
        memo.controller.start()
        memo.controller.observe(_kind, event.get("type"), event["object"])


@kopf.on.event("", "v1", "secrets", id="watch-secrets")
async def watch_secrets(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Registries' Secrets: a fixed password or token heals at once, not at the next resync."""
    memo.controller.observe_secret(event.get("type"), event["object"])
