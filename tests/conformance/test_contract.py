"""The contract every backend keeps, run against each registry's simulator (in-process, fast).

The reconcile core relies on these (see :mod:`modelsync.backends.base`): a create derives the entry's
identity from the resource, so a create whose reply was lost and is tried again leaves one entry; a
create that meets an entry of ours adopts it, and one that meets an entry that is not ours is
``NameTaken`` and never touches it; "not found" on delete is success; an entry gone behind our back
is absent to ``observe`` and ``Recoverable`` to an ``update``; a resync of an unchanged spec finds
nothing to send; 5xx and 429 are ``Recoverable`` with the registry's Retry-After; a kind the registry
has no counterpart for is ``Unsupported``. The same scenarios run end to end in
``tests/integration/test_conformance.py``.
"""
from __future__ import annotations

from typing import Any, AsyncIterator, Callable

import pytest

from modelsync import vendors
from modelsync.backends import backend_class, make_backend
from modelsync.backends.base import Backend, NameTaken, Observation, Recoverable, Terminal, Unsupported

from .adapters import ADAPTERS, Adapter, Scope
from .conftest import Sim


@pytest.fixture
async def fresh(adapter: Adapter, sim: Sim, scope: Scope) -> AsyncIterator[Callable[[], Backend]]:
    """New backends on the same connection: what an operator restarted with no status has (no cache)."""
    made: list[Backend] = []

    def new() -> Backend:
        made.append(make_backend(adapter.connection(sim, scope)))
        return made[-1]

    yield new
    for b in made:
        await b.aclose()


def test_every_vendor_has_an_adapter() -> None:
    assert {a.vendor for a in ADAPTERS} == set(vendors.VENDORS)
    assert len({a.id for a in ADAPTERS}) == len(ADAPTERS)


# ---------------------------------------------------------------- crash safety: one entry per resource


async def test_lost_create_reply_retried_leaves_one_entry(adapter: Adapter, sim: Sim, scope: Scope,
                                                          backend: Backend, fresh: Callable[[], Backend]) -> None:
    res = adapter.resource(scope, adapter.model_spec())
    sim.faults(lose_next=1, match=adapter.create_match)
    with pytest.raises(Recoverable):
        await backend.create(res)
    assert sim.knobs()["lose_next"] == 0, "the reply was not lost: the scenario proved nothing"
    made = adapter.entries(sim, scope)
    assert len(made) == 1, made  # the registry did the work
    # the core's next try observes first: the entry is found as ours
    obs = await backend.observe(res)
    assert obs.exists and obs.external_id == made[0]
    # a create tried again without looking (a restarted operator's first try) adopts it
    await fresh().create(res)
    await backend.create(res)
    assert adapter.entries(sim, scope) == made
    assert (await fresh().observe(res)).up_to_date


async def test_create_twice_adopts_ours(adapter: Adapter, sim: Sim, scope: Scope, backend: Backend,
                                        fresh: Callable[[], Backend]) -> None:
    res = adapter.resource(scope, adapter.model_spec())
    await backend.create(res)
    first = await backend.observe(res)
    # the status of the first create was lost: the next try creates again, meets the entry and adopts it
    await fresh().create(res)
    await backend.create(res)
    after = await fresh().observe(res)
    assert after.exists and after.up_to_date, after.diff
    assert after.external_id == first.external_id
    assert adapter.entries(sim, scope) == [first.external_id]


async def test_adopting_ours_brings_a_changed_spec_in(adapter: Adapter, sim: Sim, scope: Scope,
                                                     backend: Backend) -> None:
    spec = adapter.model_spec()
    res = adapter.resource(scope, spec)
    await backend.create(res)
    changed = adapter.resource(scope, adapter.changed(spec), uid=res.uid)
    # a create meeting our own entry is a success; what it leaves differing, the core's next
    # observe finds and an update sends
    await backend.create(changed)
    obs = await backend.observe(changed)
    if obs.diff:
        await backend.update(changed, obs)
    assert (await backend.observe(changed)).up_to_date
    assert len(adapter.entries(sim, scope)) == 1


# ---------------------------------------------------------------- entries that are not ours


async def test_an_entry_not_ours_under_our_name_is_name_taken(adapter: Adapter, sim: Sim, scope: Scope,
                                                              backend: Backend) -> None:
    if not adapter.exclusive_names:
        pytest.skip(f"{adapter.id}: names are not unique in this registry (an entry is found by an id derived "
                    "from the resource); test_an_entry_not_ours_is_never_touched covers it")
    name = f"{scope.prefix}taken"
    theirs = adapter.put_foreign(sim, scope, name)
    before = adapter.snapshot(sim, theirs)
    res = adapter.resource(scope, adapter.named(adapter.model_spec(), name))
    with pytest.raises(NameTaken) as info:
        await backend.create(res)
    # the message says what to do: another name, or adopt it by its id
    message = info.value.message
    assert name in message and "not managed by this resource" in message, message
    assert adapter.name_field in message and f"spec.registries[].externalId: {theirs}" in message, message
    assert info.value.reason == "NameTaken" and info.value.fields in ((), (adapter.name_field,))
    with pytest.raises(NameTaken):
        await backend.observe(res)  # never updated either
    await backend.delete(res)  # nor deleted
    assert adapter.snapshot(sim, theirs) == before
    assert adapter.entries(sim, scope) == [theirs]


async def test_an_entry_made_by_another_resource_is_name_taken(adapter: Adapter, sim: Sim, scope: Scope,
                                                               backend: Backend) -> None:
    if not adapter.exclusive_names:
        pytest.skip(f"{adapter.id}: names are not unique in this registry; each resource has its own entry")
    spec = adapter.named(adapter.model_spec(), f"{scope.prefix}shared")
    await backend.create(adapter.resource(scope, spec, name="first"))
    with pytest.raises(NameTaken):
        await backend.create(adapter.resource(scope, spec, name="second"))
    assert len(adapter.entries(sim, scope)) == 1


async def test_an_entry_not_ours_is_never_touched(adapter: Adapter, sim: Sim, scope: Scope,
                                                  backend: Backend) -> None:
    """Whatever the registry does with names: an entry someone else made is never adopted, changed or
    deleted (exclusive names: NameTaken; shared names: ours is a separate entry)."""
    name = f"{scope.prefix}taken"
    theirs = adapter.put_foreign(sim, scope, name)
    before = adapter.snapshot(sim, theirs)
    res = adapter.resource(scope, adapter.named(adapter.model_spec(), name))
    try:
        await backend.create(res)
    except NameTaken:
        assert adapter.exclusive_names
    else:
        assert not adapter.exclusive_names, "an entry that is not ours was adopted"
        obs = await backend.observe(res)
        assert obs.exists and obs.external_id != theirs
    await backend.delete(res)
    assert adapter.snapshot(sim, theirs) == before
    assert adapter.entries(sim, scope) == [theirs]


# ---------------------------------------------------------------- delete


async def test_delete_twice_is_success(adapter: Adapter, sim: Sim, scope: Scope, backend: Backend) -> None:
    res = adapter.resource(scope, adapter.model_spec())
    await backend.create(res)
    assert len(adapter.entries(sim, scope)) == 1
    await backend.delete(res)
    assert adapter.entries(sim, scope) == []
    await backend.delete(res)  # not found is success
    assert not (await backend.observe(res)).exists
    never = adapter.resource(scope, adapter.model_spec(), name="never-made")
    await backend.delete(never)  # nothing was ever made for it: success too


# ---------------------------------------------------------------- changed behind our back


async def test_an_entry_vanished_before_an_update(adapter: Adapter, sim: Sim, scope: Scope,
                                                  backend: Backend) -> None:
    spec = adapter.model_spec()
    res = adapter.resource(scope, spec)
    await backend.create(res)
    changed = adapter.resource(scope, adapter.changed(spec), uid=res.uid)
    obs = await backend.observe(changed)
    assert obs.exists and obs.diff and obs.external_id
    adapter.remove(sim, obs.external_id)
    assert adapter.entries(sim, scope) == []
    # observe says absent (the core creates it again) ...
    assert not (await backend.observe(changed)).exists
    # ... and an update sent with the observation from before is a retry, never a failure of the spec
    with pytest.raises(Recoverable) as info:
        await backend.update(changed, obs)
    assert not isinstance(info.value, Terminal) and info.value.reason == "RegistryUnavailable"
    assert adapter.entries(sim, scope) == []  # and it did not make one on its own


# ---------------------------------------------------------------- resync


async def test_an_unchanged_observe_after_create_has_an_empty_diff(adapter: Adapter, sim: Sim, scope: Scope,
                                                                   backend: Backend) -> None:
    res = adapter.resource(scope, adapter.model_spec())
    inventory = await backend.create(res)
    from_reply = backend.observation(res, inventory)
    assert from_reply is None or (from_reply.exists and from_reply.diff == ()), from_reply
    sim.clear_journal()
    for b in (backend, make_backend(backend.conn)):
        try:
            obs = await b.observe(res)
        finally:
            if b is not backend:
                await b.aclose()
        assert obs.exists and obs.diff == () and obs.up_to_date
        assert obs.external_id == adapter.entries(sim, scope)[0]
    writes = [e for e in sim.journal() if e["method"] not in ("GET", "HEAD") and "login" not in e["path"]]
    assert writes == [], "an observe wrote to the registry"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("knobs, retry_after, status", [
    pytest.param({"throttle_next": 1, "retry_after": 7}, 7.0, "429", id="429"),
    pytest.param({"fail_next": 1, "retry_after": 3}, 3.0, "503", id="503"),
    pytest.param({"fail_next": 1, "error_status": 500}, None, "500", id="500"),
])
@pytest.mark.parametrize("call", ["check", "observe", "create"])
async def test_5xx_and_429_are_recoverable_with_retry_after(adapter: Adapter, sim: Sim, scope: Scope,
                                                            backend: Backend, call: str, knobs: dict[str, Any],
                                                            retry_after: float | None, status: str) -> None:
    res = adapter.resource(scope, adapter.model_spec())
    args = () if call == "check" else (res,)
    sim.faults(**knobs)
    with pytest.raises(Recoverable) as info:
        await getattr(backend, call)(*args)
    assert not isinstance(info.value, Terminal)
    assert info.value.retry_after == retry_after
    assert f"HTTP {status}" in info.value.message, info.value.message
    remaining = sim.knobs()
    assert remaining["throttle_next"] == remaining["fail_next"] == 0
    # the registry is back: the same call goes through
    await getattr(backend, call)(*args)
    assert len(adapter.entries(sim, scope)) == (1 if call == "create" else 0)


async def test_a_model_service_is_unsupported_where_the_registry_has_none(adapter: Adapter, sim: Sim, scope: Scope,
                                                                         backend: Backend) -> None:
    kinds = backend_class(adapter.vendor).kinds
    assert ("ModelService" in kinds) is adapter.service and backend.supports("ModelService") is adapter.service
    assert backend.supports("Model")
    if adapter.service:
        spec = adapter.service_spec()
        assert spec is not None
        svc = adapter.resource(scope, spec, kind="ModelService")
        await backend.create(svc)
        assert (await backend.observe(svc)).up_to_date
        await backend.delete(svc)
        assert not (await backend.observe(svc)).exists
        return
    svc = adapter.resource(scope, {"description": "vLLM", "framework": "vLLM"}, kind="ModelService")
    sim.clear_journal()
    for call in (backend.observe(svc), backend.create(svc), backend.update(svc, Observation(exists=True))):
        with pytest.raises(Unsupported) as info:
            await call
        assert "ModelService" in info.value.message and info.value.reason == "Unsupported"
    await backend.delete(svc)  # nothing was ever made for it: success, and no request
    assert sim.journal() == []
