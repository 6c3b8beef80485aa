"""The template backend's flows and shared helpers, on an in-memory registry (no vendor involved)."""
from __future__ import annotations

import logging
from typing import Any, Mapping

import pytest

from modelsync.backends.base import (
    Entry, NameTaken, Observation, Recoverable, RegistryConnection, Resource, Terminal, Unsupported,
)
from modelsync.backends.template import Exists, Record, TemplateBackend, holds, paged, without_nulls

CONN = RegistryConnection(key="ModelRegistry/ns/reg", name="reg", kind="ModelRegistry", backend="memory",
                          endpoint="http://memory")


def res(name: str = "m", *, kind: str = "Model", adopted: bool = False, external_id: str | None = None,
        description: str = "d") -> Resource:
    spec = type("Spec", (), {"description": description})()
    return Resource(kind=kind, name=name, namespace="ns", uid=f"uid-{name}", generation=1,  # type: ignore[arg-type]
                    spec=spec, external_id=external_id, adopted=adopted)


class Memory(TemplateBackend):
    """A registry in a dict: entry id = resource name, owner marker = the resource's uid."""

    name = "memory"
    kinds = frozenset({"Model"})

    def __init__(self) -> None:
        super().__init__(CONN)
        self.store: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.lose_create_reply = False

    def validate(self, r: Resource) -> None:
        if r.spec.description == "bad":
            raise Terminal("bad description", fields=("spec.description",))

    async def read(self, r: Resource) -> Record | None:
        self.calls.append("read")
        return self.store.get(r.name)

    def owned(self, record: Record, r: Resource) -> bool:
        return record.get("owner") == r.uid

    async def observed(self, r: Resource, record: Record) -> Observation:
        diff = () if record.get("description") == r.spec.description else ("description",)
        return Observation(exists=True, external_id=r.name, diff=diff, inventory=dict(record))

    async def post(self, r: Resource) -> Record | Exists:
        self.calls.append("post")
        if r.name in self.store:
            return Exists(f"memory create {r.name}")
        self.store[r.name] = {"description": r.spec.description, "owner": r.uid}
        if self.lose_create_reply:
            raise Recoverable("reply lost")
        return self.store[r.name]

    async def patch(self, r: Resource, obs: Observation) -> Mapping[str, Any]:
        self.calls.append("patch")
        if r.name not in self.store:
            raise Recoverable("gone")
        self.store[r.name]["description"] = r.spec.description
        return self.store[r.name]

    async def remove(self, r: Resource, record: Record | None) -> None:
        self.calls.append("remove")
        self.store.pop(r.name, None)

    async def check(self) -> str:
        return "in memory"

    async def listed(self) -> list[Record]:
        return [{"name": k, **v} for k, v in self.store.items()]

    def entry(self, record: Record) -> Entry | None:
        return Entry(kind="Model", external_id=record["name"], name=record["name"], owner=record.get("owner"))


class Unmarked(Memory):
    marked = False


async def test_observe_create_update_delete_round_trip() -> None:
    b = Memory()
    assert (await b.observe(res())).exists is False
    assert (await b.create(res()))["description"] == "d"
    assert (await b.observe(res())).up_to_date
    obs = await b.observe(res(description="e"))
    assert obs.diff == ("description",)
    assert (await b.update(res(description="e"), obs))["description"] == "e"
    await b.delete(res())
    await b.delete(res())  # delete twice: "not found" is success
    assert b.store == {}


async def test_a_lost_create_reply_is_adopted_by_the_retry(caplog: pytest.LogCaptureFixture) -> None:
    b = Memory()
    b.lose_create_reply = True
    with pytest.raises(Recoverable):
        await b.create(res())
    b.lose_create_reply = False
    with caplog.at_level(logging.INFO):
        inv = await b.create(res())
    assert inv["owner"] == "uid-m" and len(b.store) == 1
    assert "already exists and is ours; adopting it" in caplog.text


async def test_an_existing_entry_not_ours_is_name_taken_and_never_touched() -> None:
    b = Memory()
    b.store["m"] = {"description": "theirs", "owner": "someone"}
    with pytest.raises(NameTaken):
        await b.create(res())
    with pytest.raises(NameTaken):
        await b.observe(res())
    b.calls.clear()
    await b.delete(res())  # left in place: read, never removed
    assert b.calls == ["read"] and b.store["m"]["description"] == "theirs"


async def test_an_adopted_entry_is_ours_by_declaration() -> None:
    b = Memory()
    b.store["m"] = {"description": "theirs", "owner": "someone"}
    obs = await b.observe(res(adopted=True, external_id="m"))
    assert obs.exists and obs.diff == ("description",)


async def test_exists_but_gone_on_read_back_is_recoverable() -> None:
    b = Memory()

    async def post(r: Resource) -> Exists:
        return Exists("memory create m")

    b.post = post  # type: ignore[method-assign]
    with pytest.raises(Recoverable, match="memory create m: the registry reported it exists, but it is gone"):
        await b.create(res())


async def test_a_kind_without_counterpart_is_unsupported_and_delete_sends_nothing() -> None:
    b = Memory()
    svc = res(kind="ModelService")
    for call in (b.observe(svc), b.create(svc), b.update(svc, Observation(exists=True))):
        with pytest.raises(Unsupported, match="memory registries have no counterpart for a ModelService; "
                                              "remove registry reg from this ModelService's spec.registries"):
            await call
    await b.delete(svc)
    assert b.calls == []


async def test_a_refused_spec_fails_before_any_request_but_is_still_deleted() -> None:
    b = Memory()
    await b.create(res())
    b.calls.clear()
    bad = res(description="bad")
    for call in (b.observe(bad), b.create(bad), b.update(bad, Observation(exists=True, diff=("description",)))):
        with pytest.raises(Terminal):
            await call
    assert b.calls == []
    await b.delete(bad)
    assert b.store == {}


async def test_an_unmarked_registry_deletes_without_reading() -> None:
    b = Unmarked()
    b.store["m"] = {"description": "d", "owner": "someone"}
    assert (await b.observe(res())).exists  # its id is the resource's own: no owner to check
    b.calls.clear()
    await b.delete(res())
    assert b.calls == ["remove"] and b.store == {}


async def test_list_entries_maps_every_listed_record() -> None:
    b = Memory()
    await b.create(res("a"))
    await b.create(res("b"))
    assert [(e.external_id, e.owner) for e in await b.list_entries()] == [("a", "uid-a"), ("b", "uid-b")]


def test_holds_compares_the_keys_set_and_empty_means_empty() -> None:
    assert holds({"a": 1}, {"a": 1, "b": 2})
    assert not holds({"a": 1}, {"a": 2})
    assert not holds({"a": {"x": 1}}, {"a": None})
    assert holds({}, None) and holds({}, {"a": None, "b": "", "c": []}) and not holds({}, {"a": 1})
    assert holds([{"a": 1}], [{"a": 1, "b": 2}]) and not holds([{"a": 1}], [{"a": 1}, {"a": 2}])
    assert not holds(True, 1) and not holds(1, True) and holds(1, 1.0)


def test_holds_loose_options() -> None:
    assert holds({}, {"a": 1}, empty_is_empty=False)
    assert not holds({"a": None}, {}, empty_is_empty=False)  # the key must be there
    assert holds({"a": None}, {})  # absent reads as null
    assert not holds([{"a": 1}], [{"a": 1, "b": 2}], lists=False)
    assert holds(True, 1, strict_bools=False)


def test_without_nulls() -> None:
    class Model:
        def model_dump(self, exclude_none: bool) -> dict[str, Any]:
            assert exclude_none
            return {"a": {"b": None, "c": 1}, "d": (1, None)}

    assert without_nulls({"x": None, "y": [None, {"z": None}]}) == {"y": [None, {}]}
    assert without_nulls(Model()) == {"a": {"c": 1}, "d": [1, None]}
    assert without_nulls(3) == 3


async def test_paged_follows_the_cursor_until_none_a_repeat_or_the_limit() -> None:
    seen: list[int] = []

    async def offsets(start: int) -> tuple[list[int], int | None]:
        seen.append(start)
        items = list(range(start, min(start + 2, 5)))
        return items, None if len(items) < 2 else start + len(items)

    assert await paged(offsets, 0) == [0, 1, 2, 3, 4] and seen == [0, 2, 4]

    async def stuck(token: str) -> tuple[list[str], str | None]:
        return [token or "first"], "same"

    assert await paged(stuck, "") == ["first", "same"]

    async def endless(n: int) -> tuple[list[int], int | None]:
        return [n], n + 1

    assert await paged(endless, 0, max_pages=3) == [0, 1, 2]
