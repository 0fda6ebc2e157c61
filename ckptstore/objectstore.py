"""ObjectStore: objects by id over a backend, compressed on the way in, verified on the way out."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from ckptstore.backends.base import Backend, StoredObject
from ckptstore.compression import MAX_OBJECT_BYTES, Codec
from ckptstore.errors import CorruptObject, InvalidValue, MalformedData, ObjectNotFound
from ckptstore.objects import ID_BYTES, Kind, hex_id, object_id

__all__ = ["IOStats", "ObjectStore"]


@dataclass(slots=True)
class IOStats:
    """Counters of object traffic, so tests can assert structure instead of timing."""

    objects_read: int = 0
    bytes_read: int = 0
    read_batches: int = 0
    objects_written: int = 0
    bytes_written: int = 0

    def reset(self) -> None:
        """Zero every counter."""
        for name in self.__slots__:
            setattr(self, name, 0)


class ObjectStore:
    """Reads and writes objects; every read re-hashes, every write is verified first."""

    def __init__(self, backend: Backend, codec: Codec | None = None) -> None:
        self.backend = backend
        self.codec = codec or Codec()
        self.stats = IOStats()

    def _unpack(self, stored: StoredObject) -> tuple[Kind, bytes]:
        oid = hex_id(stored.id)
        try:
            kind = Kind(stored.kind)
        except ValueError:
            raise CorruptObject(oid, f"unknown kind {stored.kind}") from None
        try:
            data = self.codec.decompress(stored.codec, stored.data, stored.raw_len)
        except MalformedData as err:
            raise CorruptObject(oid, err.problem) from None
        actual = object_id(kind, data)
        if actual != stored.id:
            raise CorruptObject(oid, f"its content has id {actual.hex()}")
        return kind, data

    def get_many(self, ids: Collection[bytes]) -> dict[bytes, tuple[Kind, bytes]]:
        """Return ``{id: (kind, canonical bytes)}`` for every id, in one backend round trip.

        Raises:
            ObjectNotFound: if any id is not stored.
            CorruptObject: if any object fails verification.
        """
        wanted = list(ids)
        found = self.backend.get_objects(wanted)
        self.stats.read_batches += 1
        if len(found) != len(set(wanted)):
            missing = next(oid for oid in wanted if oid not in found)
            raise ObjectNotFound(hex_id(missing))
        out = {}
        for oid, stored in found.items():
            out[oid] = self._unpack(stored)
            self.stats.objects_read += 1
            self.stats.bytes_read += len(stored.data)
        return out

    def get(self, oid: bytes) -> tuple[Kind, bytes]:
        """Return ``(kind, canonical bytes)`` of one object (see :meth:`get_many`)."""
        return self.get_many([oid])[oid]

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

    def prepare(self, objects: Mapping[bytes, tuple[Kind, bytes]]) -> list[StoredObject]:
        """Compress objects for storage, verifying each compressed form before it is used.

        The compressed bytes are decompressed again and compared with the original (a
        codec bug must fail the write, not corrupt the store, as restic learned).

        Raises:
            CorruptObject: if a compressed form does not decode back to its object.
            InvalidValue: if an object exceeds the size limit.
        """
        out = []
        for oid, (kind, data) in objects.items():
            if len(data) > MAX_OBJECT_BYTES:
                raise InvalidValue(
                    hex_id(oid), f"is {len(data)} bytes; the limit is {MAX_OBJECT_BYTES}"
                )
            codec, payload = self.codec.compress(data)
            try:
                back = self.codec.decompress(codec, payload, len(data))
            except MalformedData as err:
                back = err.problem.encode()
            if back != data:
                raise CorruptObject(
                    hex_id(oid), "compression did not round-trip; nothing was written"
                )
            out.append(StoredObject(oid, int(kind), codec, len(data), payload))
            self.stats.objects_written += 1
            self.stats.bytes_written += len(payload)
        return out
