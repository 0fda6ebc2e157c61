"""Hostile data: decompression bombs, absurd nesting, msgpack extensions, fuzzed bytes.

What a stored object claims is never trusted: a valid id only proves that someone
hashed the bytes, so each test plants its object under its own, correct id and
references it from a checkpoint, as a hand-edited or malicious store file would.
Everything must end in the store's own error types: ``CorruptObject`` naming the
object when reading, ``InvalidInput`` when committing, one ``error:`` line at the CLI,
and nothing written.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from ckpt_cli.inputs import read_state as read_state_file
from ckptstore import CkptError, CorruptObject, InvalidCheckpoint, Store
from ckptstore.backends.base import StoredObject
from ckptstore.backends.memory import MemoryBackend
from ckptstore.commit_object import Commit
from ckptstore.commits import now_iso
from ckptstore.compression import MAX_OBJECT_BYTES, RAW, ZSTD, Codec
from ckptstore.decoding import decode, decode_trusted
from ckptstore.errors import InvalidInput, MalformedData
from ckptstore.graph import references
from ckptstore.objects import Kind, encode, object_id
from ckptstore.objectstore import ObjectStore
from ckptstore.refs import Refs
from ckptstore.snapshot import read_state
from ckptstore.tree_build import build_map
from ckptstore.trees import parse_node
from ckptstore.validation import validate_state
from reliability.harness import scaled
from reliability.test_crash import ckpt_command
from test_cli import assert_error, ckpt, store_counts

DEEP = 100_000
FUZZ_EXAMPLES = scaled(1000, 50_000)


def nested_list(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def nested_dict(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = {"k": value}
    return value


def plant(store: Store, session: str, kind: Kind, data: bytes, *, codec: int = RAW,
          raw_len: int | None = None, oid: bytes | None = None) -> bytes:  # fmt: skip
    """Store ``data`` under its own id (or ``oid``) and make session ``session`` reach it.

    A blob becomes variable ``x``; a tree becomes the variables tree; a commit becomes
    the session's head. Returns the planted object's id.
    """
    oid = oid or object_id(kind, data)
    pending: dict[bytes, tuple[Kind, bytes]] = {}
    head = oid
    if kind != Kind.COMMIT:
        variables = build_map(pending, [("x", oid)]) if kind == Kind.BLOB else oid
        root = build_map(pending, [("variables", variables)])
        commit = Commit(tree=root, parents=(), created_at=now_iso(), session=session).to_bytes()
        head = object_id(Kind.COMMIT, commit)
        pending[head] = (Kind.COMMIT, commit)
    stored = StoredObject(oid, int(kind), codec, len(data) if raw_len is None else raw_len, data)
    update = Refs.session_update(session, None, head, "planted")
    assert store.backend.write([stored, *store.objects.prepare(pending)], [update]).ok
    return oid


def assert_refused_everywhere(directory: Path, session: str, oid: bytes) -> None:
    """load raises CorruptObject naming ``oid``, fsck reports it, ``ckpt load`` says one line."""
    with Store.open(directory) as store:
        with pytest.raises(CorruptObject) as caught:
            store.load(session)
        assert caught.value.object_id == oid.hex()
        assert len(str(caught.value)) < 300
        problems = [(p.kind, p.object_id) for p in store.fsck().problems]
        assert ("corrupt", oid.hex()) in problems
    before = store_counts(directory)
    assert_error(ckpt("--store", str(directory), "load", session), 1, oid.hex())
    assert store_counts(directory) == before


@pytest.fixture
def seeded(store_dir: Path) -> Path:
    with Store.open(store_dir) as store:
        store.commit({"variables": {"log": "word " * 400}}, session="main")
    return store_dir


# --- decompression bombs -----------------------------------------------------------------


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """zstd frames of 1 GiB of zeros (~32 KiB each), with and without a declared size."""
    chunk = bytes(1 << 24)
    frames = {}
    for declared in (False, True):
        compressor = zstandard.ZstdCompressor(level=1, write_content_size=declared)
        stream = compressor.compressobj(size=(1 << 30) if declared else -1)
        frames["declared" if declared else "undeclared"] = b"".join(
            [*(stream.compress(chunk) for _ in range(64)), stream.flush()]
        )
    return frames


def peak_rss(args: list[str]) -> tuple[int, str, int]:
    """Run a command; its exit code, stderr and peak resident memory (KiB)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return proc.returncode, err.read().decode(), usage.ru_maxrss


@pytest.mark.parametrize(
    ("frame", "raw_len"),
    [("undeclared", 2000), ("declared", 2000), ("undeclared", 1 << 30), ("declared", 1 << 30)],
)
def test_a_decompression_bomb_is_refused_within_bounded_memory(
    seeded: Path, bombs: dict[str, bytes], frame: str, raw_len: int,
    figure: Callable[[str], None],
) -> None:  # fmt: skip
    with Store.open(seeded) as store:
        # Posing as the blob of a long string, as a compressed object would.
        claimed = object_id(Kind.BLOB, encode("boom " * 400))
        oid = plant(
            store, "bomb", Kind.BLOB, bombs[frame], codec=ZSTD, raw_len=raw_len, oid=claimed
        )
    assert_refused_everywhere(seeded, "bomb", oid)
    code, _, normal = peak_rss([*ckpt_command(), "--store", str(seeded), "load", "main"])
    assert code == 0
    code, err, bombed = peak_rss([*ckpt_command(), "--store", str(seeded), "load", "bomb"])
    assert (code, len(err.splitlines())) == (1, 1), err
    assert "corrupt" in err
    assert bombed < normal + 64 * 1024, "the bomb was expanded"
    figure(
        f"1 GiB zstd bomb ({frame} size, recorded length {raw_len}, limit"
        f" {MAX_OBJECT_BYTES >> 20} MiB): refused; `ckpt load` peaked at {bombed >> 10} MiB"
        f" of memory (a normal load: {normal >> 10} MiB)"
    )


# --- nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [nested_list, nested_dict])
@pytest.mark.parametrize(
    "call",
    [
        lambda s, v: s.commit({"variables": {"deep": v}}),
        lambda s, v: s.commit({"tasks": [{"id": "1", "subject": v}]}),
        lambda s, v: s.commit(variables={"deep": v}),
        lambda s, v: s.capture({"variables": {"deep": v}}, merge=True, probe=False),
        lambda s, v: s.capture({"phase": {"notes": v}}, probe=False),
    ],
    ids=["state", "task", "variables", "capture-merge", "capture"],
)
def test_100000_levels_of_nesting_are_refused_through_the_api(
    seeded: Path, shape: Callable[[int], Any], call: Callable[[Store, Any], object]
) -> None:
    before = store_counts(seeded)
    with Store.open(seeded) as store, pytest.raises(InvalidCheckpoint) as caught:
        call(store, shape(DEEP))
    assert "nested deeper than 256 levels" in str(caught.value)
    assert len(str(caught.value)) < 200
    assert store_counts(seeded) == before


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[" * DEEP + "]" * DEEP, "nested too deeply"),
        ('{"variables": {"d": ' + "[" * DEEP + "]" * DEEP + "}}", "nested too deeply"),
        ('{"variables": {"d": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}}", "nested too deeply"),
        ('{"variables": {"d": ' + "[" * 300 + "]" * 300 + "}}", "deeper than 256"),
    ],
    ids=["list", "variable", "object", "300-levels"],
)
@pytest.mark.parametrize("how", ["file", "stdin", "merge"])
def test_deep_nesting_is_refused_by_ckpt_commit_state(
    seeded: Path, tmp_path: Path, text: str, needle: str, how: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    before = store_counts(seeded)
    args = ["--store", str(seeded), "commit", "--no-probe", "--state"]
    if how == "stdin":
        result = ckpt(*args, "-", input=text)
    else:
        result = ckpt(*args, str(path), *(["--merge"] if how == "merge" else []))
    line = assert_error(result, 2, needle)
    assert len(line) < 300
    assert store_counts(seeded) == before


@pytest.mark.parametrize("depth", [300, 5_000])
def test_deep_nesting_is_refused_by_ckpt_commit_var(seeded: Path, depth: int) -> None:
    """--var VALUE is JSON when it parses: a deep array is refused, not kept as a string."""
    before = store_counts(seeded)
    value = "[" * depth + "]" * depth
    result = ckpt("--store", str(seeded), "commit", "--no-probe", "--var", "deep", value)
    assert_error(result, 2, "nested")
    assert store_counts(seeded) == before


@pytest.mark.parametrize(
    ("data", "shape"),
    [
        (b"\x91" * DEEP + b"\xc0", "100,000 nested lists"),
        (b"\x81\xa1k" * DEEP + b"\xc0", "100,000 nested maps"),
        (b"\x91" * 1000 + b"\xc0", "1,000 nested lists (within msgpack's own stack)"),
        (b"\x81\xa1k" * 300 + b"\xc0", "300 nested maps"),
    ],
    ids=["lists", "maps", "lists-1000", "maps-300"],
)
def test_deep_nesting_in_stored_data_is_refused(seeded: Path, data: bytes, shape: str) -> None:
    with Store.open(seeded) as store:
        oid = plant(store, "deep", Kind.BLOB, data)
    assert_refused_everywhere(seeded, "deep", oid)


def test_the_deepest_storable_value_loads_and_prints(seeded: Path) -> None:
    """256 levels (the state and its variables map are two) go in, load, print and diff."""
    deepest = nested_list(254)
    with Store.open(seeded) as store:
        store.commit({"variables": {"d": deepest}}, session="deepest")
        assert store.load("deepest")["variables"]["d"] == deepest
    out = ckpt("--store", str(seeded), "load", "deepest", "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["variables"]["d"] == deepest
    assert ckpt("--store", str(seeded), "diff", "main", "deepest").exit_code == 0


# --- msgpack extension types ---------------------------------------------------------------

TIMESTAMP = msgpack.packb(msgpack.Timestamp(1, 0))
EXT_COMMIT = msgpack.packb(
    {"tree": b"\x01" * 32, "parents": [], "created_at": "2026-01-01T00:00:00+00:00",
     "session": "ext", "notes": msgpack.ExtType(5, b"x"), "agent_id": None,
     "agent_tier": None, "estimated_tokens": 0, "generation": 1},
    use_bin_type=True,
)  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (Kind.BLOB, b"\xd4\x05\x00"),  # fixext 1, type 5
        (Kind.BLOB, TIMESTAMP),  # the one extension msgpack itself defines
        (Kind.BLOB, b"\x92\x01\xc7\x03\x07abc"),  # ext 8 inside a list
        (Kind.TREE, b"\x93\x00\xa1x\xd4\x05\x00"),  # a map leaf whose entry is an ext
        (Kind.COMMIT, EXT_COMMIT),
    ],
    ids=["fixext", "timestamp", "ext-in-list", "tree", "commit"],
)
def test_msgpack_extension_types_in_stored_data_are_refused(
    seeded: Path, kind: Kind, data: bytes
) -> None:
    with Store.open(seeded) as store:
        oid = plant(store, "ext", kind, data)
    assert_refused_everywhere(seeded, "ext", oid)
    with Store.open(seeded) as store:
        (problem,) = [p for p in store.fsck().problems if p.object_id == oid.hex()]
        assert "extension type" in problem.detail or "type Timestamp" in problem.detail


@pytest.mark.parametrize(
    "command",
    [["load", "bad"], ["diff", "main", "bad"], ["show", "bad:variables.x"],
     ["log", "bad", "--key", "variables.x"], ["summary", "-s", "bad"], ["restore", "bad"],
     ["export", "bad", "--dir", "out"], ["stats"]],
    ids=lambda c: c[0],
)  # fmt: skip
@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (Kind.TREE, b"\x93\x00\xa1x\xd4\x05\x00"),
        (Kind.BLOB, b"\x91" * 1000 + b"\xc0"),
        (Kind.BLOB, b"\x92\xa1a\xc4\x03abc"),
    ],
    ids=["tree-with-ext", "blob-too-deep", "blob-with-bytes"],
)
def test_every_read_path_names_a_malformed_object(
    seeded: Path, tmp_path: Path, kind: Kind, data: bytes, command: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Correctly hashed but malformed objects: each command says which object it is."""
    with Store.open(seeded) as store:
        oid = plant(store, "bad", kind, data)
    monkeypatch.chdir(tmp_path)
    assert_error(ckpt("--store", str(seeded), *command), 1, oid.hex(), "corrupt")


def plant_commit(store: Store, session: str, tree: bytes, objects: list[StoredObject]) -> bytes:
    """A commit of session ``session`` whose tree is ``tree``; returns the commit id."""
    data = Commit(tree=tree, parents=(), created_at=now_iso(), session=session).to_bytes()
    oid = object_id(Kind.COMMIT, data)
    commit = StoredObject(oid, int(Kind.COMMIT), RAW, len(data), data)
    assert store.backend.write(
        [*objects, commit], [Refs.session_update(session, None, oid, "x")]
    ).ok
    return oid


def raw(kind: Kind, value: Any) -> StoredObject:
    data = encode(value, allow_bytes=True)
    return StoredObject(object_id(kind, data), int(kind), RAW, len(data), data)


@pytest.mark.parametrize(
    "root",
    [raw(Kind.BLOB, 5), raw(Kind.TREE, [1, 7]), raw(Kind.TREE, [0, "meta", 5])],
    ids=["blob", "list-tree", "meta-not-a-map"],
)
def test_a_commit_whose_tree_is_no_checkpoint_is_reported_and_refused(
    seeded: Path, root: StoredObject
) -> None:
    """Well-formed objects in the wrong places: fsck says so, load names the object."""
    with Store.open(seeded) as store:
        plant_commit(store, "odd", root.id, [root])
        problems = store.fsck().problems
        assert root.id.hex() in [p.object_id for p in problems]
        with pytest.raises(CorruptObject, match=root.id.hex()):
            read_state(store.objects, root.id)
    for command in (["load", "odd"], ["diff", "main", "odd"]):
        assert_error(ckpt("--store", str(seeded), *command), 1, root.id.hex())


# --- random bytes into every decoder --------------------------------------------------------

_CODEC = Codec()
SAMPLES = [
    encode({"id": "7", "subject": "deploy", "status": "pending", "blocks": [1, 2.5, None]}),
    encode(["x" * 40, -(2**63), 2**64 - 1, -0.0, True, {"": {}}]),
    encode([0, "a", b"\x01" * 32, "b", 5], allow_bytes=True),  # a map leaf
    encode([3, b"\x02" * 32, 40, b"\x03" * 32, 2], allow_bytes=True),  # a list inner node
    Commit(b"\x01" * 32, (b"\x02" * 32,), "2026-01-01T00:00:00+00:00", "s", "n").to_bytes(),
    _CODEC.compress(encode({"log": "word " * 300}))[1],  # a zstd frame
    json.dumps({"tasks": [{"id": 1, "status": "done"}], "variables": {"a": [1, {"b": None}]}})
    .encode(),
]  # fmt: skip


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """Random bytes, or a valid encoding damaged a few times (reaches deeper code)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=400))
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat"]))
        if how == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif how == "truncate":
            del data[at:]
        elif how == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 16))] * draw(st.integers(1, 50))
    return bytes(data)


def only_store_errors(call: Callable[[], object]) -> str:
    """Run a decoder: it returns or raises a CkptError, nothing else; returns which."""
    try:
        call()
    except CkptError as err:
        return type(err).__name__
    return "accepted"


def test_random_bytes_fed_to_every_decoder_raise_only_store_errors(
    figure: Callable[[str], None],
) -> None:
    outcomes: Counter[str] = Counter()

    def check(name: str, call: Callable[[], object], allowed: str) -> None:
        outcome = only_store_errors(call)
        assert outcome in ("accepted", allowed), (name, outcome)
        outcomes[outcome] += 1

    @settings(max_examples=FUZZ_EXAMPLES)
    @given(
        hostile_bytes(), st.integers(-1, 3), st.integers(-1, 1 << 20), st.sampled_from(list(Kind))
    )
    def fuzz(data: bytes, codec: int, raw_len: int, kind: Kind) -> None:
        outcomes["inputs"] += 1
        check("decode", lambda: decode(data), "MalformedData")
        check("decode_trusted", lambda: decode_trusted(data), "MalformedData")
        for trusted in (True, False):
            check("parse_node", lambda t=trusted: parse_node(data, trusted=t), "MalformedData")
        check("commit", lambda: Commit.from_value(decode_trusted(data)), "MalformedData")
        for strict in (True, False):
            check("references", lambda s=strict: references(kind, data, strict=s), "MalformedData")
        check("decompress", lambda: Codec().decompress(codec, data, raw_len), "MalformedData")
        # Through the object store: a stored row with any header, read back.
        objects = ObjectStore(MemoryBackend())
        oid = object_id(kind, data)
        objects.backend.write([StoredObject(oid, int(kind), codec, raw_len, data)])
        check("ObjectStore.get", lambda: objects.get(oid), "CorruptObject")

    fuzz()
    inputs = outcomes.pop("inputs")
    figure(
        f"{inputs} fuzzed inputs x 9 decoder calls: {outcomes['accepted']} accepted,"
        f" {sum(outcomes.values()) - outcomes['accepted']} refused with the store's own"
        " errors, 0 other exceptions"
    )


def test_random_bytes_as_a_state_file_give_one_bad_input_error(
    figure: Callable[[str], None],
) -> None:
    """The CLI's JSON reader, then the checkpoint validator: bad input, never a crash."""
    outcomes: Counter[str] = Counter()

    @settings(max_examples=FUZZ_EXAMPLES // 2)
    @given(hostile_bytes())
    def fuzz(data: bytes) -> None:
        with tempfile.NamedTemporaryFile(suffix=".json") as handle:
            handle.write(data)
            handle.flush()
            refused: CkptError | None = None
            try:
                state, _ = read_state_file(handle.name)
                validate_state(state)
            except CkptError as err:
                refused = err
        outcomes["refused" if refused else "accepted"] += 1
        if refused is not None:
            assert isinstance(refused, InvalidInput), repr(refused)
            assert "\n" not in str(refused)

    fuzz()
    figure(
        f"{sum(outcomes.values())} fuzzed state files: {outcomes['accepted']} valid,"
        f" {outcomes['refused']} refused as bad input in one line, 0 other errors"
    )


def test_the_fuzzed_decoders_do_refuse_damage() -> None:
    """The fuzz tests above can fail: these decoders raise on what is not theirs."""
    with pytest.raises(MalformedData):
        Commit.from_value(decode_trusted(SAMPLES[0]))
    with pytest.raises(MalformedData):
        Codec().decompress(ZSTD, SAMPLES[5][:-3], 1505)


@pytest.mark.parametrize(
    "root",
    [raw(Kind.TREE, [0, "variables", 5]), raw(Kind.TREE, [0, "zzz", 5])],
    ids=["inline-variables", "unknown-section"],
)
@pytest.mark.parametrize(
    "command",
    [["load", "odd"], ["diff", "main", "odd"], ["show", "odd:variables.a"],
     ["log", "odd", "--key", "variables.a"], ["summary", "odd"], ["restore", "odd"]],
    ids=lambda c: c[0],
)  # fmt: skip
def test_every_read_path_names_a_root_that_is_no_checkpoint(
    seeded: Path, tmp_path: Path, root: StoredObject, command: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A root map with the wrong sections: no command reads past it or crashes."""
    with Store.open(seeded) as store:
        plant_commit(store, "odd", root.id, [root])
        (problem,) = store.fsck().problems
        assert (problem.kind, problem.object_id) == ("not a checkpoint", root.id.hex())
    monkeypatch.chdir(tmp_path)
    assert_error(ckpt("--store", str(seeded), *command), 1, root.id.hex(), "corrupt")
