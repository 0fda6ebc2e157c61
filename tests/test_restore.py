"""Restore: variables back as environment variables, through a real shell's eval."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptstore import InvalidOption, Store, render_env, restore_env
from ckptstore.restore import env_name
from strategies import json_values
from test_cli import assert_error, ckpt, ok

CKPT = Path(sys.executable).parent / "ckpt"
NASTY = [
    "",
    "plain",
    "it's",
    "'",
    "''\\''",
    "\"double\" and 'single'",
    "$(touch /tmp/ckpt-pwned)",
    "`touch /tmp/ckpt-pwned`",
    "${HOME} $HOME $$ $? $1",
    "back\\slash\\",
    "new\nline\n",
    "\n\n",
    "crlf\r\n",
    "tab\tand\vvtab",
    "-n",
    "!history !! !$",
    "$'ansi\\n'",
    "; rm -rf / #",
    "unicode: é ü 中文 🚀 \u2028 \u0085",
]
# Any text but NUL (no environment can hold it) and lone surrogates (not encodable).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
VALUES = st.one_of(
    TEXT, st.sampled_from(NASTY), json_values(6).filter(lambda v: "\\u0000" not in json.dumps(v))
)


def shell_env(shell: str, script: str, *, text: str = "") -> dict[str, str]:
    """The ``CKPT_`` variables a shell has after running ``script``, read with printenv.

    ``text`` is the shell's standard input.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("CKPT_")}
    done = subprocess.run(
        [shell, "-c", f"{script}\nprintenv -0"],
        input=text.encode("utf-8"),
        env=base,
        capture_output=True,
        timeout=60,
        check=True,
    )
    found = {}
    for item in done.stdout.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep and name.startswith(b"CKPT_"):
            found[name.decode()] = value.decode("utf-8", "surrogateescape")
    return found


def expected_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@given(st.dictionaries(TEXT, VALUES, max_size=6))
def test_eval_of_the_export_lines_recreates_every_value_in_bash(variables: dict[str, Any]) -> None:
    env = restore_env({"variables": variables})
    text = render_env(env)
    # As `eval "$(ckpt restore --env)"` sees it: through a command substitution.
    got = shell_env("bash", 'eval "$(cat)"', text=text)
    assert got == env.values
    for name, key in env.keys.items():
        assert got[name] == expected_text(variables[key])


@pytest.mark.parametrize("shell", ["bash", "sh", "zsh"])
def test_eval_of_ckpt_restore_env_recreates_exactly_the_values(
    shell: str, store_dir: Path, tmp_path: Path
) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    variables: dict[str, Any] = {f"v{i}": value for i, value in enumerate(NASTY)}
    variables["long"] = "x" * 100_000
    variables.update(
        count=7, flag=True, nothing=None, obj={"a": [1, "x"]}, API_TOKEN="s3cr3t-value"
    )
    with Store.open(store_dir) as store:
        store.commit(variables=variables, notes="nasty values")
    marker = Path("/tmp/ckpt-pwned")
    marker.unlink(missing_ok=True)
    got = shell_env(shell, f'eval "$("{CKPT}" --store "{store_dir}" restore --env)"')
    assert not marker.exists()  # nothing in a value ran
    assert got == {f"CKPT_{k.upper()}": expected_text(v) for k, v in variables.items()}
    assert got["CKPT_API_TOKEN"] == "s3cr3t-value"  # secrets are restored: that is the point


def test_keys_are_sanitised_and_collisions_reported() -> None:
    variables = {"a-b": 1, "a_b": 2, "A_B": 3, "straße": "x", "2fast": "y", "": "empty"}
    env = restore_env({"variables": variables})
    assert env.values == {
        "CKPT_": "empty", "CKPT_2FAST": "y", "CKPT_A_B": "3", "CKPT_STRA_E": "x",
    }  # fmt: skip
    (collision,) = env.collisions
    assert collision.name == "CKPT_A_B"
    assert collision.kept == "A_B"  # keys that only needed upper-casing win
    assert set(collision.dropped) == {"a-b", "a_b"}
    assert "exported 'A_B' only" in env.warnings()[0]
    assert env_name("2fast", "") == "_2FAST"
    assert restore_env({"variables": {"x": 1}}, prefix="").values == {"X": "1"}


def test_a_value_holding_nul_is_reported_not_exported() -> None:
    env = restore_env({"variables": {"bad": "a\0b", "good": "ok", "nested": ["\0"]}})
    # Inside JSON text a NUL is written \u0000, which an environment holds fine.
    assert env.values == {"CKPT_GOOD": "ok", "CKPT_NESTED": '["\\u0000"]'}
    assert set(env.skipped) == {"bad"}
    assert all("NUL" in line for line in env.warnings())


def test_apply_sets_the_variables_in_a_mapping() -> None:
    environ: dict[str, str] = {"OTHER": "1"}
    restore_env({"variables": {"step": 8, "target": "prod"}}).apply(environ)
    assert environ == {"OTHER": "1", "CKPT_STEP": "8", "CKPT_TARGET": "prod"}
    with Store.memory() as store:
        store.commit(variables={"step": 9})
        assert restore_env(store.checkpoint()).values == {"CKPT_STEP": "9"}  # the seed's way


@pytest.mark.parametrize("prefix", ["1X_", "A-B", "ckpt ", "É_"])
def test_a_prefix_that_is_not_a_name_is_refused(prefix: str) -> None:
    with pytest.raises(InvalidOption, match="prefix"):
        restore_env({"variables": {}}, prefix=prefix)


def test_dotenv_and_json_formats(store_dir: Path) -> None:
    env = restore_env({"variables": {"a": "plain $x", "b": "it's\nmulti", "c": 'q"\\'}})
    # As python-dotenv (interpolate=False) and docker compose read them back.
    assert render_env(env, "dotenv").splitlines() == [
        "CKPT_A='plain $x'",
        'CKPT_B="it\'s\\nmulti"',
        'CKPT_C="q\\"\\\\"',
    ]
    assert json.loads(render_env(env, "json")) == env.values
    with pytest.raises(InvalidOption, match="format 'yaml'"):
        render_env(env, "yaml")


def test_restore_command_formats_prefix_and_warnings(store_dir: Path) -> None:
    with Store.open(store_dir) as store:
        store.commit(variables={"step": 3, "a-b": 1, "a_b": 2})
    out = ok(ckpt("--store", str(store_dir), "restore"))
    assert out.stdout == "export CKPT_A_B='2'\nexport CKPT_STEP='3'\n"
    assert out.stderr.startswith("warning: variables 'a_b', 'a-b' all map to CKPT_A_B")
    as_json = ok(ckpt("--store", str(store_dir), "restore", "--env", "--format", "json"))
    assert json.loads(as_json.stdout) == {"CKPT_A_B": "2", "CKPT_STEP": "3"}
    plain = ok(ckpt("--store", str(store_dir), "restore", "--prefix", "X_", "-f", "dotenv"))
    assert "X_STEP='3'\n" in plain.stdout


def test_restore_to_writes_the_checkpoint_for_its_owner_only(
    store_dir: Path, tmp_path: Path
) -> None:
    result = ok(ckpt("--store", str(store_dir), "commit", "--secret-var", "DB_PASSWORD", "pw-9876"))
    target = tmp_path / "out" / "restored.json"
    target.parent.mkdir()
    done = ok(ckpt("--store", str(store_dir), "restore", "--to", str(target)))
    assert done.stdout == ""  # --to alone prints no export lines
    written = json.loads(target.read_text(encoding="utf-8"))
    assert written["checkpoint_id"] == result.stdout.strip()
    assert written["variables"] == {"DB_PASSWORD": "pw-9876"}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    both = ok(ckpt("--store", str(store_dir), "restore", "--env", "--to", str(target)))
    assert both.stdout == "export CKPT_DB_PASSWORD='pw-9876'\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["restored.json"]


@pytest.mark.parametrize(
    ("args", "code", "needles"),
    [
        (["--format", "yaml"], 2, ["--format 'yaml'", "env, dotenv, json"]),
        (["--prefix", "9"], 2, ["prefix '9'"]),
        (["HEAD~5"], 1, ["HEAD~5"]),
        (["--to", "/nonexistent-dir/x.json"], 2, ["--to", "/nonexistent-dir"]),
    ],
)
def test_restore_errors_are_one_line(
    store_dir: Path, args: list[str], code: int, needles: list[str]
) -> None:
    with Store.open(store_dir) as store:
        store.commit(variables={"step": 1})
    assert_error(ckpt("--store", str(store_dir), "restore", *args), code, *needles)
