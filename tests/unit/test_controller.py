"""The controller's work queue and its decisions about watch events (no apiserver needed:
these are the in-memory parts; tests/integration runs them against the real one)."""
from __future__ import annotations

import asyncio
from typing import Any

from modelsync.controller import Controller, Key, WorkQueue, in_sync
from modelsync.reconcile import Outcome
from modelsync.testing.clock import ManualClock, settle


async def test_a_key_is_queued_once_and_the_earlier_time_wins() -> None:
    q = WorkQueue(ManualClock())
    k = Key("Model", "ns", "a")
    q.add(k, 10)
    q.add(k, 0)
    q.add(k, 5)
    assert len(q) == 1
    got = await asyncio.wait_for(q.get(), 1)
    assert got == k and len(q) == 0 and q.in_flight == 1


async def test_a_key_added_while_processing_is_processed_again_after() -> None:
    q = WorkQueue(ManualClock())
    k = Key("Model", "ns", "a")
    q.add(k)
    assert await q.get() == k
    q.add(k)  # an event while a worker has it
    assert len(q) == 0
    q.done(k)
    assert await asyncio.wait_for(q.get(), 1) == k


async def test_replace_moves_a_key_later() -> None:
    clock = ManualClock()
    q = WorkQueue(clock)
    k = Key("Model", "ns", "a")
    q.add(k)
    q.add(k, 60, replace=True)
    task = asyncio.create_task(q.get())
    await clock.advance(59.9)
    assert not task.done(), "a key due in 60 s was handed out before"
    await clock.advance(0.1)
    assert task.done() and task.result() == k


async def test_a_due_key_wakes_one_worker_and_later_keys_come_in_time_order() -> None:
    clock = ManualClock()
    q = WorkQueue(clock)
    got: list[tuple[str, float]] = []
    start = clock.now()

    async def worker() -> None:
        while True:
            key = await q.get()
            got.append((key.name, clock.now() - start))
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    await settle()
    assert len(q._waiters) == 8
    for name, delay in (("c", 0.3), ("a", 0.1), ("b", 0.2)):
        q.add(Key("Model", "ns", name), delay)
    q.add(Key("Model", "ns", "now"))
    await settle()
    assert got == [("now", 0.0)]
    assert [round(t.when - start, 6) for t in clock.pending] == [0.1]  # one timer, for the earliest key
    await clock.advance(0.3)
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert [n for n, _ in got] == ["now", "a", "b", "c"]  # each once, in due order
    assert [round(at, 6) for _, at in got[1:]] == [0.1, 0.2, 0.3]  # each at its due time, not later
    assert len(q._waiters) == 0 and q._timer is None  # cancelled workers leave nothing behind


async def test_a_key_handed_to_a_cancelled_worker_is_not_lost() -> None:
    q = WorkQueue(ManualClock())
    k = Key("Model", "ns", "a")
    task = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add(k)  # handed to the waiting task's future...
    task.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(task, return_exceptions=True)
    assert q.in_flight == 0
    assert await asyncio.wait_for(q.get(), 1) == k


async def test_an_earlier_key_rearms_the_timer() -> None:
    clock = ManualClock()
    q = WorkQueue(clock)
    q.add(Key("Model", "ns", "late"), 60)
    task = asyncio.create_task(q.get())
    await settle()
    assert [t.when - clock.now() for t in clock.pending] == [60]
    q.add(Key("Model", "ns", "soon"), 0.05)
    assert [round(t.when - clock.now(), 6) for t in clock.pending] == [0.05]  # the 60 s timer is cancelled
    await clock.advance(0.05)
    assert task.done() and task.result().name == "soon"


class Reconciler:
    """Each reconcile waits until ``gate`` is set (none: it returns at once)."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.running = 0
        self.peak = 0
        self.done: list[str] = []
        self.reader = None

    async def reconcile(self, kind: str, body: dict[str, Any], attempt: int = 0) -> Outcome:
        self.running += 1
        self.peak = max(self.peak, self.running)
        if self.gate is not None:
            await self.gate.wait()
        self.running -= 1
        self.done.append(body["metadata"]["name"])
        return Outcome({}, [], None)

    def forget(self, uid: str) -> None:
        pass

    def needs_finalizer(self, kind: str, body: dict[str, Any]) -> bool:
        return False


def obj(name: str, generation: int = 1, status: dict[str, Any] | None = None, rv: int = 1) -> dict[str, Any]:
    return {"kind": "Model", "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "generation": generation,
                                          "resourceVersion": str(rv)},
            "spec": {"registries": [{"name": "r"}]}, "status": status or {}}


READY = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"},
                                                 {"type": "Synced", "status": "True"}]}


async def test_a_burst_is_worked_off_with_a_bounded_number_in_flight() -> None:
    rec = Reconciler(gate=asyncio.Event())
    c = Controller(rec, writer=None, workers=8, resync=3600, clock=ManualClock())  # type: ignore[arg-type]
    c.start()
    try:
        for i in range(100):
            c.observe("Model", "ADDED", obj(f"m{i}"))
        await settle()
        assert rec.running == 8 and len(c.queue) == 92  # every worker busy, the rest wait in the queue
        rec.gate.set()  # type: ignore[union-attr]
        for _ in range(50):
            if len(rec.done) == 100:
                break
            await settle()
    finally:
        await c.stop()
    assert sorted(rec.done) == sorted(f"m{i}" for i in range(100))
    assert rec.peak == 8


async def test_only_new_objects_generations_and_annotations_are_work() -> None:
    c = Controller(Reconciler(), writer=None, workers=1, resync=3600)  # type: ignore[arg-type]
    c.observe("Model", None, obj("a"))
    assert len(c.queue) == 1
    c.queue.discard(Key("Model", "ns", "a"))
    c.observe("Model", "MODIFIED", obj("a", status=READY, rv=2))  # our own status write
    assert len(c.queue) == 0
    c.observe("Model", "MODIFIED", obj("a", generation=2, rv=3))
    assert len(c.queue) == 1
    c.queue.discard(Key("Model", "ns", "a"))
    c.observe("Model", "MODIFIED", obj("a", generation=2, rv=1))  # stale: older than what we hold
    assert c.objects[Key("Model", "ns", "a")]["metadata"]["resourceVersion"] == "3"
    anno = obj("a", generation=2, rv=4)
    anno["metadata"]["annotations"] = {"modelsync.io/sync-requested-at": "now"}
    c.observe("Model", "MODIFIED", anno)
    assert len(c.queue) == 1


async def test_the_echo_of_a_version_already_cached_is_not_copied_again() -> None:
    """A watch event of the resourceVersion the cache holds (the echo of the operator's own write,
    a relisting) changes nothing: the cached copy stays as it is, not rebuilt. Only an event
    without a usable resourceVersion is taken as it comes."""
    c = Controller(Reconciler(), writer=None, workers=1, resync=3600)  # type: ignore[arg-type]
    key = Key("Model", "ns", "a")
    c.observe("Model", None, obj("a", status=READY, rv=5))
    cached = c.objects[key]
    c.observe("Model", "MODIFIED", obj("a", status=READY, rv=5))
    assert c.objects[key] is cached
    c.observe("Model", "MODIFIED", obj("a", status=READY, rv=6))
    assert c.objects[key] is not cached and c.objects[key]["metadata"]["resourceVersion"] == "6"
    opaque = obj("b", status=READY)
    opaque["metadata"]["resourceVersion"] = "not-a-number"
    c.observe("Model", None, opaque)
    first = c.objects[Key("Model", "ns", "b")]
    c.observe("Model", "MODIFIED", {**opaque, "spec": {"changed": True}})
    assert c.objects[Key("Model", "ns", "b")] is not first


async def test_objects_in_sync_at_start_are_spread_over_the_resync_interval() -> None:
    clock = ManualClock()
    c = Controller(Reconciler(), writer=None, workers=1, resync=100, clock=clock)  # type: ignore[arg-type]
    for i in range(200):
        c.observe("Model", None, obj(f"m{i}", status=READY))
    assert in_sync(obj("x", status=READY))
    now = clock.now()
    dues = sorted(d - now for d in c.queue._due.values())
    assert len(dues) == 200 and dues[0] >= 0 and dues[-1] <= 101  # up to one tick (1 s) later
    assert dues[100] > 25 and dues[100] < 75  # spread, not bunched


async def test_a_registry_read_before_its_watch_listed_it_is_still_checked() -> None:
    """A Model's reconcile reads its registry through the Store before the registries' watch
    has listed (that watch may be retrying a 429): the registry must be queued then, since the
    listing later finds it cached and unchanged and queues nothing."""
    from modelsync.controller import Store

    registry = {"kind": "ModelRegistry", "metadata": {"name": "r", "namespace": "ns", "uid": "u-r", "generation": 1,
                                                      "resourceVersion": "5"}, "spec": {}}

    class Reader:
        gets = 0

        async def registry(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
            Reader.gets += 1
            return registry

    c = Controller(Reconciler(), writer=None, workers=1, resync=3600)  # type: ignore[arg-type]
    store = Store(c, Reader())  # type: ignore[arg-type]
    key = Key("ModelRegistry", "ns", "r")
    assert (await store.registry("ModelRegistry", "r", "ns"))["metadata"]["uid"] == "u-r"
    assert key in c.queue._due
    c.queue.discard(key)
    await store.registry("ModelRegistry", "r", "ns")
    assert Reader.gets == 1 and key not in c.queue._due  # cached now: no second read, no second check
    c.observe("ModelRegistry", None, registry)  # the listing arrives
    assert c.objects[key]["metadata"]["resourceVersion"] == "5"


async def test_resyncs_fall_due_on_the_tick_grid_and_stay_spread() -> None:
    from modelsync.controller import RESYNC_TICK

    clock = ManualClock(start=1000.3)
    c = Controller(Reconciler(), writer=None, workers=1, resync=100, clock=clock)  # type: ignore[arg-type]
    for i in range(300):
        c.observe("Model", None, obj(f"m{i}", status=READY))
    dues = list(c.queue._due.values())
    assert all(d / RESYNC_TICK == int(d / RESYNC_TICK) for d in dues)  # on the grid
    assert len(set(dues)) > 50  # still spread over the interval, not bunched on a few ticks
    c.queue.add(Key("Model", "ns", "now"))  # work that is not a resync is not held for the grid
    assert c.queue._due[Key("Model", "ns", "now")] == clock.now()


def test_secret_version_follows_the_data_not_the_metadata() -> None:
    """The registry fingerprint in every resource's status includes the Secret's version: a
    finalizer or label set on the Secret (which bumps its resourceVersion) must not change it,
    or every resource would be rewritten after a restart."""
    from modelsync.kube import secret_version

    data = {"accountName": "admin", "password": "pw"}
    assert secret_version("uid-1", data) == secret_version("uid-1", dict(reversed(list(data.items()))))
    assert secret_version("uid-1", data) != secret_version("uid-1", {**data, "password": "pw2"})
    assert secret_version("uid-1", data) != secret_version("uid-2", data)  # keyed: not a bare hash of the data
    assert "pw" not in secret_version("uid-1", data)


def _synced_model(name: str, message: str = "in sync with 1 of 1 registries") -> dict[str, Any]:
    """A Model as the apiserver sends it: every event's body parsed afresh (no shared strings)."""
    import json
    return json.loads(json.dumps({
        "apiVersion": "modelsync.io/v1alpha1", "kind": "Model",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "7", "generation": 1,
                     "managedFields": [{"manager": "kubectl"}],
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a"}},
        "spec": {"registries": [{"name": "z"}], "installPath": f"/models/{name}"},
        "status": {"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "True", "reason": "Synced", "message": message,
             "observedGeneration": 1, "lastTransitionTime": "2026-12-05T09:02:32Z"}],
            "registries": [{"name": "z", "backend": "zstack", "notSettable": [
                {"field": "spec.gpu.minMemory", "message": "ZStack AddModel has no field for it " * 5}]}]}}))


def test_slim_keeps_one_copy_of_the_strings_every_cached_body_repeats() -> None:
    from modelsync.controller import StringPool, slim
    pool = StringPool()
    a, b = slim(_synced_model("a"), pool=pool), slim(_synced_model("b"), pool=pool)
    expected = _synced_model("a")
    del expected["metadata"]["managedFields"]
    expected["metadata"]["annotations"] = {"team": "a"}
    assert a == expected  # the same content: only managedFields and the last-applied copy go
    ca, cb = a["status"]["conditions"][0], b["status"]["conditions"][0]
    ka, kb = next(k for k in ca if k == "lastTransitionTime"), next(k for k in cb if k == "lastTransitionTime")
    assert ka is kb  # keys
    assert ca["message"] is cb["message"] and ca["reason"] is cb["reason"]  # values of shared keys
    na, nb = a["status"]["registries"][0]["notSettable"][0], b["status"]["registries"][0]["notSettable"][0]
    assert na["message"] is nb["message"] and na["field"] is nb["field"]
    # an object's own values are not pooled
    assert a["spec"]["installPath"] not in pool.strings and a["metadata"]["uid"] not in pool.strings


def test_slim_leaves_the_event_body_and_a_secrets_data_alone() -> None:
    from modelsync.controller import StringPool, slim
    body = _synced_model("a")
    before = _synced_model("a")
    slim(body, pool=StringPool())
    assert body == before
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque",
              "data": {"message": "c2VjcmV0"}}
    pool = StringPool()
    kept = slim(secret, pool=pool)
    assert kept["data"] is secret["data"] and "c2VjcmV0" not in pool.strings


def test_the_string_pool_is_bounded_and_skips_long_texts() -> None:
    from modelsync.controller import StringPool, slim
    pool = StringPool(limit=30)
    for i in range(20):
        slim(_synced_model(f"m{i}", message=f"failed for m{i}"), pool=pool)
        assert len(pool.strings) <= 30
    long = "x" * 5000
    slim(_synced_model("l", message=long), pool=pool)
    assert long not in pool.strings


def test_slim_reuses_the_cached_spec_or_status_when_an_event_did_not_change_it() -> None:
    from modelsync.controller import StringPool, slim
    pool = StringPool()
    first = slim(_synced_model("a"), pool=pool)
    same = slim(_synced_model("a"), first, pool=pool)
    assert same["status"] is first["status"] and same["spec"] is first["spec"]
    changed = _synced_model("a", message="in sync with 2 of 2 registries")
    second = slim(changed, first, pool=pool)
    assert second["spec"] is first["spec"]
    assert second["status"] is not first["status"] and second["status"] == changed["status"]


async def test_the_first_users_of_a_registry_hold_it_and_its_secret_with_one_write_each() -> None:
    """Two Models naming a registry not held yet are reconciled side by side: the second must not
    patch the Secret again while the first one's patch is still in flight."""
    registry = {"kind": "ModelRegistry", "metadata": {"name": "r", "namespace": "ns", "uid": "u-r", "generation": 1,
                                                      "resourceVersion": "5"},
                "spec": {"credentialsSecretRef": {"name": "creds"}}}

    class Writer:
        def __init__(self) -> None:
            self.gate = asyncio.Event()
            self.holds: list[tuple[str, str, str]] = []

        async def hold(self, kind: str, namespace: str, name: str, finalizer: str, held: bool,
                       known: Any = None) -> bool:
            self.holds.append((kind, namespace, name))
            await self.gate.wait()  # the apiserver takes its time
            return True

    writer = Writer()
    c = Controller(Reconciler(), writer=writer, workers=1, resync=3600)  # type: ignore[arg-type]
    c.observe("ModelRegistry", None, registry)
    first = asyncio.ensure_future(c._hold_registries(Key("Model", "ns", "a"), obj("a")))
    second = asyncio.ensure_future(c._hold_registries(Key("Model", "ns", "b"), obj("b")))
    await settle()
    assert writer.holds == [("Secret", "ns", "creds")]  # the second waits for the first
    writer.gate.set()
    await asyncio.gather(first, second)
    assert writer.holds == [("Secret", "ns", "creds"), ("ModelRegistry", "ns", "r")]
    c.observe("ModelRegistry", "DELETED", registry)
    assert Key("ModelRegistry", "ns", "r") not in c._holding  # a deleted registry's lock goes with it
