"""The flows every registry backend repeats, written once over small per-vendor hooks.

A vendor's client subclasses :class:`TemplateBackend` and supplies the hooks; the template owns the
order of the steps and the contract they keep (see :mod:`.base`):

* every flow but ``delete`` starts with the kind check (:meth:`~.base.Backend.require`) and
  :meth:`~TemplateBackend.validate` (a spec the registry refuses fails before any request);
* ``observe`` — :meth:`~TemplateBackend.read` the entry, absent →
  :meth:`~TemplateBackend.absent`; present but not ours → :meth:`~TemplateBackend.not_ours`
  (``NameTaken``); else :meth:`~TemplateBackend.observed` (diff, inventory, not-settable fields);
* ``create`` — :meth:`~TemplateBackend.post`; when the registry says the entry
  already exists (:class:`Exists`), :meth:`~TemplateBackend.adopt`: read it back (gone → Recoverable),
  check the owner (not ours → ``NameTaken``), and hand it to :meth:`~TemplateBackend.adopted` (the
  inventory, or one update to bring it in line);
* ``update`` — :meth:`~TemplateBackend.patch` (the vendor's own: what it
  sends for ``obs.diff`` is wire knowledge);
* ``delete`` — a kind without a counterpart had nothing made: success without a request; a marked
  registry reads the entry first and leaves one that is not ours (logged); then
  :meth:`~TemplateBackend.remove`, where "not found" is success;
* ``list_entries`` — :meth:`~TemplateBackend.listed` (usually one :func:`paged` loop) and
  :meth:`~TemplateBackend.entry` for each record.

A flow that really differs in one registry (a registry without a conflict answer that looks entries
up by slug, one whose model has versions) is overridden there, step by step, rather than bent into
the template. The pure helpers below (:func:`holds`, :func:`without_nulls`, :func:`paged`) are what the
vendors' mappings and loops share.
"""
from __future__ import annotations

import abc
import dataclasses
import logging
from typing import Any, Awaitable, Callable, ClassVar, Mapping, Sequence, TypeVar

from .base import Backend, Entry, NameTaken, Observation, Recoverable, Resource

log = logging.getLogger(__name__)

#: one entry as the registry returns it (a decoded JSON object)
Record = Mapping[str, Any]

T = TypeVar("T")
C = TypeVar("C")


@dataclasses.dataclass(frozen=True)
class Exists:
    """What :meth:`TemplateBackend.post` returns when the registry says the entry is already there
    (a 409, or the vendor's equivalent): the template reads it back and adopts it or refuses it.
    ``what`` names the create in messages ("create model ws/x")."""

    what: str


class TemplateBackend(Backend, abc.ABC):
    """A :class:`~.base.Backend` whose flows are the template's, over the hooks below."""

    #: whether the registry's entries carry an ownership marker that must be read before one is
    #: adopted or deleted. False when the entry's id is derived from the resource itself, so that
    #: only this resource can ever name it (then :meth:`owned` is never asked and delete does not read)
    marked: ClassVar[bool] = True

    # ------------------------------------------------------------ hooks

    def validate(self, res: Resource) -> None:
        """Refuse a spec the registry would refuse (Terminal), before observe, create or update make
        any request. Never called by delete: a resource whose spec went wrong must still go."""

    @abc.abstractmethod
    async def read(self, res: Resource) -> Record | None:
        """The registry's entry for ``res``, or None when it has none."""

    def owned(self, record: Record, res: Resource) -> bool:
        """Whether ``record`` carries this resource's ownership marker (or the status recorded it as
        this resource's). An adopted resource's entry is ours by declaration wherever it is observed."""
        return True

    def where(self, res: Resource, record: Record | None = None) -> str:
        """The entry in messages ("model ws/x")."""
        return f"{self.name} entry of {res.kind} {res.namespace}/{res.name}"

    def not_ours(self, res: Resource, record: Record) -> NameTaken:
        """The NameTaken for an entry that is someone else's."""
        return NameTaken(f"{self.where(res, record)} exists and is not managed by this resource")

    def absent(self, res: Resource) -> Observation:
        """The observation when the registry has no entry for ``res``."""
        return Observation(exists=False)

    @abc.abstractmethod
    async def observed(self, res: Resource, record: Record) -> Observation:
        """The observation of ``res``'s entry (ours): external id, diff, inventory, desired, not settable
        (a registry that keeps part of an entry elsewhere, e.g. its versions, reads it here)."""

    @abc.abstractmethod
    async def post(self, res: Resource) -> Record | Exists:
        """Send the create; the stored entry, or :class:`Exists` when the registry says it is there."""

    def inventory(self, record: Record) -> Mapping[str, Any]:
        """The entry as ``status.registries[].inventory``."""
        return dict(record)

    async def adopted(self, res: Resource, record: Record) -> Mapping[str, Any]:
        """What a create returns for an existing entry of ours (default: its inventory; the core
        observes next and updates what differs)."""
        return self.inventory(record)

    @abc.abstractmethod
    async def patch(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        """Send what ``obs.diff`` names; the inventory after the update. An entry gone meanwhile is
        Recoverable (the next observe finds it absent and creates it again)."""

    @abc.abstractmethod
    async def remove(self, res: Resource, record: Record | None) -> None:
        """Delete the entry (``record`` as read when :attr:`marked`, else None); "not found" is success."""

    async def listed(self) -> Sequence[Record]:
        """Every entry the registry holds in this connection's scope (for :meth:`list_entries`)."""
        await Backend.list_entries(self)  # raises Unsupported: the registry cannot list
        return ()

    def entry(self, record: Record) -> Entry | None:
        """One listed record as an :class:`~.base.Entry` (None: skip it)."""
        return None

    # ------------------------------------------------------------ flows

    def check_owner(self, res: Resource, record: Record) -> None:
        """NameTaken unless ``record`` is ours (adopted on purpose, or carrying our marker)."""
        if self.marked and not res.adopted and not self.owned(record, res):
            raise self.not_ours(res, record)

    async def observe(self, res: Resource) -> Observation:
        self.require(res.kind)
        self.validate(res)
        record = await self.read(res)
        if record is None:
            return self.absent(res)
        self.check_owner(res, record)
        return await self.observed(res, record)

    async def create(self, res: Resource) -> Mapping[str, Any]:
        self.require(res.kind)
        self.validate(res)
        created = await self.post(res)
        if isinstance(created, Exists):
            return await self.adopt(res, created.what)
        return self.inventory(created)

    async def adopt(self, res: Resource, what: str) -> Mapping[str, Any]:
        """The registry said the entry exists: read it back, check the owner, adopt it (a create
        retried after its reply was lost finds what the first one made) or refuse it (NameTaken)."""
        record = await self.read(res)
        if record is None:
            raise Recoverable(f"{what}: the registry reported it exists, but it is gone; retrying")
        self.check_owner(res, record)
        log.info("%s: already exists and is ours; adopting it", self.where(res, record))
        return await self.adopted(res, record)

    async def update(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        self.require(res.kind)
        self.validate(res)
        return await self.patch(res, obs)

    async def delete(self, res: Resource) -> None:
        if not self.supports(res.kind):
            return  # nothing was ever made for a kind the registry has no counterpart for
        if not self.marked:
            await self.remove(res, None)
            return
        record = await self.read(res)
        if record is None:
            return
        if not self.owned(record, res):
            log.warning("%s is not managed by %s/%s; leaving it in place", self.where(res, record), res.namespace,
                        res.name)
            return
        await self.remove(res, record)

    async def list_entries(self) -> list[Entry]:
        return [e for record in await self.listed() if (e := self.entry(record)) is not None]


# ------------------------------------------------------------ shared pure helpers


def holds(desired: Any, actual: Any, *, lists: bool = True, empty_is_empty: bool = True,
          strict_bools: bool = True) -> bool:
    """Whether ``actual`` holds ``desired`` (deep subset): an object holds the keys the desired one
    sets (keys others add are not differences), anything else is compared equal.

    ``lists``: lists are compared element-wise by the same rule (False: equal as a whole).
    ``empty_is_empty``: a desired ``{}`` is held only by an object holding nothing (``{}`` means
    empty); False: by any object. ``strict_bools``: ``True`` is not held by ``1``.
    """
    if isinstance(desired, Mapping):
        if not desired and empty_is_empty:
            return actual is None or _blank(actual)
        if not isinstance(actual, Mapping):
            return False
        if not empty_is_empty:  # a key must be present; its desired value may be None
            return all(k in actual and holds(v, actual[k], lists=lists, empty_is_empty=False,
                                             strict_bools=strict_bools) for k, v in desired.items())
        return all(holds(v, actual.get(k), lists=lists, empty_is_empty=empty_is_empty, strict_bools=strict_bools)
                   for k, v in desired.items())
    if lists and isinstance(desired, list):
        return isinstance(actual, list) and len(desired) == len(actual) and all(
            holds(d, a, lists=lists, empty_is_empty=empty_is_empty, strict_bools=strict_bools)
            for d, a in zip(desired, actual))
    if strict_bools and (isinstance(desired, bool) or isinstance(actual, bool)):
        return desired is actual
    return bool(desired == actual)


def _blank(value: Any) -> bool:
    """A read value that holds nothing: null, ``""``, an empty list, or an object of such."""
    if isinstance(value, Mapping):
        return all(_blank(v) for v in value.values())
    if isinstance(value, list):
        return not value
    return value is None or value == ""


def without_nulls(value: Any) -> Any:
    """``value`` (a pydantic model, or plain data) as JSON-ready data with every null member of every
    object dropped; tuples become lists, which keep their length."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(exclude_none=True)
    if isinstance(value, Mapping):
        return {str(k): without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [without_nulls(v) for v in value]
    return value


async def paged(fetch: Callable[[C], Awaitable[tuple[Sequence[T], C | None]]], first: C, *,
                max_pages: int | None = None) -> list[T]:
    """Every item of a paged listing. ``fetch(cursor)`` reads one page and returns its items and the
    next page's cursor (a page number, an offset, a page token), or None after the last page. A
    cursor that does not move ends the loop too (a server repeating a token would never end it), and
    so does ``max_pages``."""
    out: list[T] = []
    cursor = first
    pages = 0
    while True:
        items, following = await fetch(cursor)
        out += items
        pages += 1
        if following is None or following == cursor or (max_pages is not None and pages >= max_pages):
            return out
        cursor = following


__all__ = ["Exists", "Record", "TemplateBackend", "holds", "paged", "without_nulls"]
