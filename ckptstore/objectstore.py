"""ObjectStore: objects by id over a backend, compressed on the way in, verified on the way out.

An object may be stored against a *base* — another object whose canonical bytes serve
as zstd dictionary: the previous version of the same value (a delta), or the store's
trained dictionary for small records. Reading such an object reads its base first (one
batch for all the chains a read needs, decoded a chain per zstd call); a delta chain
never grows deeper than ``MAX_CHAIN``, so a read resolves a bounded number of bases.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Final, NamedTuple

from ckptstore.backends.base import Backend, StoredObject
from ckptstore.compression import BASED, MAX_OBJECT_BYTES, ZSTD_DELTA, ZSTD_DICT, Codec
from ckptstore.decoding import decode_trusted
from ckptstore.errors import CorruptObject, InvalidValue, MalformedData, ObjectNotFound
from ckptstore.objects import ID_BYTES, Kind, hex_id, object_id

__all__ = ["MAX_CHAIN", "IOStats", "Loaded", "ObjectStore"]

MAX_CHAIN: Final = 16
"""Longest chain of deltas (an object, its base, the base's base...) a write may create."""
_DELTA_MIN: Final = 64  # below this a delta frame cannot beat plain storage
_DICT_MAX: Final = 4096  # the trained dictionary is for small records
_DELTA_CLEAR_WIN: Final = 16  # a delta this many times smaller than the object is kept
_CACHE_BYTES: Final = 32 * 1024 * 1024
_CACHE_ITEM: Final = 256 * 1024  # larger objects are read again rather than cached


class IOStats:
    """Counters of object traffic, so tests can assert structure instead of timing."""

    __slots__ = ("bytes_read", "bytes_written", "objects_read", "objects_written", "read_batches")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        self.objects_read = 0
        self.bytes_read = 0
        self.read_batches = 0
        self.objects_written = 0
        self.bytes_written = 0

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={getattr(self, name)}" for name in self.__slots__)
        return f"IOStats({counts})"


class Loaded(NamedTuple):
    """A verified object: kind, canonical bytes, and the base it is stored against."""

    kind: Kind
    data: bytes
    base: bytes | None
    depth: int
    """Length of its delta chain: 0 unless stored as a delta, else one more than the base."""


class ObjectStore:
    """Reads and writes objects; every read re-hashes, every write is verified first."""

    def __init__(self, backend: Backend, codec: Codec | None = None) -> None:
        self.backend = backend
        self.codec = codec or Codec()
        self.stats = IOStats()
        self._cache: OrderedDict[bytes, Loaded] = OrderedDict()
        self._cached = 0

    # --- reading ---------------------------------------------------------------------

    def verify(self, stored: StoredObject, base: Loaded | None) -> Loaded:
        """Decompress a stored row against its (verified) base, re-hash it, and return it.

        What every read does to an object, and what fsck does to each one in turn.

        Raises:
            CorruptObject: naming the object, when its kind, codec, frame or content
                does not check out.
        """
        oid = hex_id(stored.id)
        try:
            kind = Kind(stored.kind)
        except ValueError:
            raise CorruptObject(oid, f"unknown kind {stored.kind}") from None
        base_bytes = None
        if base is not None:
            base_bytes = _dictionary_bytes(base) if stored.codec == ZSTD_DICT else base.data
        try:
            data = self.codec.decompress(stored.codec, stored.data, stored.raw_len, base_bytes)
        except MalformedData as err:
            raise CorruptObject(oid, err.problem) from None
        actual = object_id(kind, data)
        if actual != stored.id:
            raise CorruptObject(oid, f"its content has id {actual.hex()}")
        depth = base.depth + 1 if base is not None and stored.codec == ZSTD_DELTA else 0
        return Loaded(kind, data, stored.base, depth)

    def _remember(self, oid: bytes, loaded: Loaded) -> None:
        if oid in self._cache:
            return
        self._cache[oid] = loaded
        self._cached += len(loaded.data)
        while self._cached > _CACHE_BYTES and self._cache:
            _, old = self._cache.popitem(last=False)
            self._cached -= len(old.data)

    def _fetch(self, wanted: list[bytes], *, chains: bool = False) -> dict[bytes, StoredObject]:
        found = (self.backend.get_chains if chains else self.backend.get_objects)(wanted)
        self.stats.read_batches += 1
        for stored in found.values():
            self.stats.objects_read += 1
            self.stats.bytes_read += len(stored.data)
        return found

    def read_many(self, ids: Collection[bytes], *, cached: bool = True) -> dict[bytes, Loaded]:
        """Return every object of ``ids`` with its base, verified; bases read in batches.

        Objects are immutable, so recently read ones are kept in a bounded cache and
        served from it. The bases an object needs that are not cached come in one more
        batch, whole chains at once, and a chain is decoded in one call (the links in
        between are neither verified nor kept: see :meth:`_through_chain`).

        ``cached=False`` reads (and verifies) the stored bytes of ``ids`` again, as fsck
        and gc must. It reads bases level by level, stopping at cached ones, verifies
        every link and caches them: those scans read the next version along a chain
        next, and must not decode every chain from its start for every object.

        Raises:
            ObjectNotFound: if an object (or a base it needs) is not stored.
            CorruptObject: if an object fails verification, or its base chain is broken.
        """
        wanted = list(dict.fromkeys(ids))
        hits = {oid: self._cache[oid] for oid in wanted if oid in self._cache} if cached else {}
        if len(hits) == len(wanted):
            for oid in wanted:
                self._cache.move_to_end(oid)
            return hits
        rows = self._fetch([oid for oid in wanted if oid not in hits])
        missing = next((oid for oid in wanted if oid not in rows and oid not in hits), None)
        if missing is not None:
            raise ObjectNotFound(hex_id(missing))
        # Rows stored against a base need it first: gather the chains.
        fetched = dict(rows)
        pending = self._unresolved(rows.values(), fetched)
        rounds = 0
        while pending:
            rounds += 1
            if rounds > MAX_CHAIN * 4:
                raise CorruptObject(hex_id(next(iter(pending))), "its base chain does not end")
            found = self._fetch(list(pending), chains=cached)
            lost = next((oid for oid in pending if oid not in found), None)
            if lost is not None:
                user = next(r.id for r in fetched.values() if r.base == lost)
                raise ObjectNotFound(hex_id(lost), referenced_by=f"{user.hex()} as its base")
            fetched.update(found)
            pending = self._unresolved(found.values(), fetched)
        resolved: dict[bytes, Loaded] = dict(hits)
        for oid in wanted:
            self._resolve(oid, fetched, resolved, 0, whole=cached)
        # Uncached reads (fsck, gc) still remember the bases they resolved: a base was
        # verified on the way, and the next version along a delta chain needs it again;
        # without them a scan decodes every chain from its start for every object.
        keep = resolved.keys() - hits.keys() if cached else resolved.keys() - set(wanted)
        for oid in keep:
            if len(resolved[oid].data) <= _CACHE_ITEM:
                self._remember(oid, resolved[oid])
        return {oid: resolved[oid] for oid in wanted}

    def _unresolved(
        self, stored: Collection[StoredObject], fetched: Mapping[bytes, StoredObject]
    ) -> set[bytes]:
        return {
            r.base
            for r in stored
            if r.codec in BASED and r.base and r.base not in fetched and r.base not in self._cache
        }

    def _resolve(
        self,
        oid: bytes,
        fetched: Mapping[bytes, StoredObject],
        resolved: dict[bytes, Loaded],
        depth: int,
        *,
        whole: bool = False,
    ) -> Loaded:
        """Decode ``oid`` over its base; ``whole`` decodes a delta chain in one call."""
        if oid in resolved:
            return resolved[oid]
        if oid not in fetched:
            return self._cache[oid]
        if depth > MAX_CHAIN * 4:
            raise CorruptObject(hex_id(oid), "its base chain does not end")
        stored = fetched[oid]
        if whole and stored.codec == ZSTD_DELTA:
            decoded = self._through_chain(stored, fetched, resolved)
            if decoded is not None:
                resolved[oid] = decoded
                return decoded
        base = None
        if stored.codec in BASED:
            if stored.base is None or stored.base == oid:
                # None: the base's row is gone (bases are named by row in a SQLite store).
                what = "itself" if stored.base == oid else "a base that is missing"
                raise CorruptObject(hex_id(oid), f"codec {stored.codec}, stored against {what}")
            base = self._resolve(stored.base, fetched, resolved, depth + 1)
        resolved[oid] = self.verify(stored, base)
        return resolved[oid]

    def _through_chain(
        self,
        top: StoredObject,
        fetched: Mapping[bytes, StoredObject],
        resolved: dict[bytes, Loaded],
    ) -> Loaded | None:
        """Decode a delta and the deltas below it in one zstd call; hash only the top.

        The links in between are never returned, so hashing them proves nothing the
        top's id does not: if any were wrong, the top would not hash to its id. None
        when the chain is damaged: the caller then decodes link by link, verifying
        each, to name the object at fault.
        """
        links = [top]
        below = top.base
        while below is not None and below in fetched and below not in resolved:
            if below in self._cache:
                break
            row = fetched[below]
            if row.codec != ZSTD_DELTA or len(links) > MAX_CHAIN * 4 or row.base in (None, below):
                break
            links.append(row)
            below = row.base
        if below is None or below == top.id:
            return None
        start = resolved.get(below) or self._cache.get(below)
        if start is None:
            start = self._resolve(below, fetched, resolved, 1)
        try:
            kind = Kind(top.kind)
            data = self.codec.apply_deltas(start.data, [(r.data, r.raw_len) for r in links[::-1]])
        except (ValueError, MalformedData):
            return None
        if object_id(kind, data) != top.id:
            return None
        return Loaded(kind, data, top.base, start.depth + len(links))

    def remember_written(
        self, stored: Collection[StoredObject], objects: Mapping[bytes, tuple[Kind, bytes]]
    ) -> None:
        """Cache objects just written (``stored``, as :meth:`prepare` made them).

        The next commit of a session pairs its new objects with these and deltas against
        them: without this it read back, decoded and hashed what it had just written.
        An object whose base is no longer cached is left out (its chain depth is unknown).
        """
        for row in stored:
            kind, data = objects[row.id]
            depth = 0
            if row.codec == ZSTD_DELTA and row.base is not None:
                base = self._cache.get(row.base)
                if base is None:
                    continue
                depth = base.depth + 1
            if len(data) <= _CACHE_ITEM:
                self._remember(row.id, Loaded(kind, data, row.base, depth))

    def forget(self, ids: Collection[bytes]) -> None:
        """Drop ``ids`` from the cache: another process deleted them (a write said so)."""
        for oid in ids:
            old = self._cache.pop(oid, None)
            if old is not None:
                self._cached -= len(old.data)

    def drop_cache(self) -> None:
        """Forget every cached object (the next reads go to the backend)."""
        self._cache.clear()
        self._cached = 0

    def get_many(
        self, ids: Collection[bytes], *, cached: bool = True
    ) -> dict[bytes, tuple[Kind, bytes]]:
        """Return ``{id: (kind, canonical bytes)}`` for every id (see :meth:`read_many`)."""
        return {oid: (x.kind, x.data) for oid, x in self.read_many(ids, cached=cached).items()}

    def get(self, oid: bytes, *, cached: bool = True) -> tuple[Kind, bytes]:
        """Return ``(kind, canonical bytes)`` of one object (see :meth:`get_many`)."""
        return self.get_many([oid], cached=cached)[oid]

    def cached_kind(self, oid: bytes) -> Kind | None:
        """The kind of object ``oid`` if it is in the cache (None: not known here)."""
        loaded = self._cache.get(oid)
        return loaded.kind if loaded is not None else None

    def missing(self, ids: Collection[bytes]) -> set[bytes]:
        """Return the ids that are not stored."""
        wanted = list(ids)
        return set(wanted) - self.backend.has_objects(wanted)

    def find(self, hex_prefix: str, *, limit: int = 20) -> list[tuple[bytes, Kind]]:
        """Return objects whose hex id starts with ``hex_prefix`` (for short ids)."""
        width = 2 * ID_BYTES
        low = bytes.fromhex(hex_prefix.ljust(width, "0"))
        high = bytes.fromhex(hex_prefix.ljust(width, "f"))
        return [(oid, Kind(kind)) for oid, kind in self.backend.find_objects(low, high, limit)]

    # --- writing ---------------------------------------------------------------------

    def prepare(
        self,
        objects: Mapping[bytes, tuple[Kind, bytes]],
        *,
        bases: Mapping[bytes, bytes] | None = None,
        dictionary: bytes | None = None,
    ) -> list[StoredObject]:
        """Compress objects for storage, verifying each compressed form before it is used.

        ``bases`` suggests, per new object, an existing object it resembles (its previous
        version): the object is stored as a delta against it when that is smaller and
        the chain stays within ``MAX_CHAIN``. ``dictionary`` is the id of the store's
        trained dictionary object, tried for small records. Every compressed form is
        decompressed again and compared with the original (a codec bug must fail the
        write, not corrupt the store, as restic learned).

        Raises:
            CorruptObject: if a compressed form does not decode back to its object.
            InvalidValue: if an object exceeds the size limit.
        """
        hints = {new: old for new, old in (bases or {}).items() if new in objects and new != old}
        wanted = set(hints.values()) | ({dictionary} if dictionary else set())
        known = self._loaded_bases(wanted)
        trained = _dictionary_bytes(known.get(dictionary)) if dictionary else None
        out = []
        for oid, (kind, data) in objects.items():
            if len(data) > MAX_OBJECT_BYTES:
                raise InvalidValue(
                    hex_id(oid), f"is {len(data)} bytes; the limit is {MAX_OBJECT_BYTES}"
                )
            choice = self._smallest(data, kind, hints.get(oid), known, dictionary, trained)
            stored = StoredObject(oid, int(kind), choice[0], len(data), choice[1], choice[2])
            base_bytes = None
            if stored.codec == ZSTD_DICT:
                base_bytes = trained
            elif stored.codec == ZSTD_DELTA and stored.base is not None:
                base_bytes = known[stored.base].data
            try:
                back = self.codec.decompress(stored.codec, stored.data, len(data), base_bytes)
            except MalformedData as err:
                back = err.problem.encode()
            if back != data:
                raise CorruptObject(
                    hex_id(oid), "compression did not round-trip; nothing was written"
                )
            out.append(stored)
            self.stats.objects_written += 1
            self.stats.bytes_written += len(stored.data)
        return out

    def _loaded_bases(self, ids: set[bytes]) -> dict[bytes, Loaded]:
        """The suggested bases that exist (a vanished one is simply not used)."""
        out = {oid: self._cache[oid] for oid in ids if oid in self._cache}
        rest = [oid for oid in ids if oid not in out]
        if rest:
            present = self.backend.has_objects(rest)
            if present:
                for oid, loaded in self.read_many(present).items():
                    out[oid] = loaded
                    self._remember(oid, loaded)
        return out

    def _smallest(
        self,
        data: bytes,
        kind: Kind,
        hint: bytes | None,
        known: Mapping[bytes, Loaded],
        dictionary: bytes | None,
        trained: bytes | None,
    ) -> tuple[int, bytes, bytes | None]:
        base = known.get(hint) if hint is not None else None
        delta = None
        if base is not None and base.depth < MAX_CHAIN and len(data) >= _DELTA_MIN:
            delta = self.codec.compress_against(data, ZSTD_DELTA, base.data)
            # A small change to its previous version: zstd alone cannot come near that
            # (a frame of a tree node alone is mostly its incompressible ids).
            if len(delta) * _DELTA_CLEAR_WIN <= len(data):
                return ZSTD_DELTA, delta, hint
        codec, payload = self.codec.compress(data)
        best: tuple[int, bytes, bytes | None] = (codec, payload, None)
        if delta is not None and len(delta) < len(payload):
            best = (ZSTD_DELTA, delta, hint)
        # Tree nodes are mostly ids (random bytes): a dictionary of records cannot help.
        small = len(data) <= _DICT_MAX and kind != Kind.TREE
        if trained is not None and dictionary is not None and small and best[2] is None:
            packed = self.codec.compress_against(data, ZSTD_DICT, trained)
            if len(packed) < len(best[1]):
                best = (ZSTD_DICT, packed, dictionary)
        return best


# A store has a handful of dictionaries, and every small object read or written names
# one: decoding its 32 KiB each time was most of what retraining and loads spent on them.
_DICTIONARIES: dict[bytes, bytes | None] = {}


def _dictionary_bytes(loaded: Loaded | None) -> bytes | None:
    """The zstd dictionary an object holds (a blob whose value is the dictionary's bytes)."""
    if loaded is None or loaded.kind != Kind.BLOB:
        return None
    if loaded.data in _DICTIONARIES:
        return _DICTIONARIES[loaded.data]
    try:
        value = decode_trusted(loaded.data)
    except MalformedData:
        value = None
    if len(_DICTIONARIES) >= 16:
        _DICTIONARIES.clear()
    _DICTIONARIES[loaded.data] = value if isinstance(value, bytes) else None
    return _DICTIONARIES[loaded.data]
