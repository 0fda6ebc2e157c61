"""The store's config.toml: defaults, secrets patterns, task types, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptstore import InvalidConfig, Store
from ckptstore.config import CONFIG_FILE, Config, load_config, parse_config
from ckptstore.secrets import DEFAULT_PATTERNS
from ckptstore.summary import BUILTIN_TASK_TYPES
from test_cli import assert_error, ckpt, ok

GOOD = """
# a comment
[secrets]
patterns = ["*_DSN", "VAULT_*"]

[summary.task_types.deploy]
dependency_types = ["service"]
variables = ["*_env", "region"]
aliases = ["release"]
"""


def test_no_file_means_the_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config == Config()
    assert config.secret_patterns == DEFAULT_PATTERNS
    assert dict(config.task_types) == dict(BUILTIN_TASK_TYPES)
    assert load_config(None) == Config()
    assert Store.memory().config == Config()


def test_secrets_and_task_types_are_read(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text(GOOD, encoding="utf-8")
    config = load_config(tmp_path)
    assert config.secret_patterns == (*DEFAULT_PATTERNS, "*_DSN", "VAULT_*")
    deploy = config.task_types["deploy"]
    assert config.task_types["release"] is deploy
    assert deploy.dependency_types == ("service",)
    assert deploy.wants_variable("TARGET_ENV")
    assert "terraform" in config.task_types  # built-ins stay
    only_mine = parse_config('[secrets]\npatterns = ["X"]\ndefaults = false\n')
    assert only_mine.secret_patterns == ("X",)


def test_serve_settings_are_read() -> None:
    assert (Config().serve_auto, Config().serve_idle) == (False, None)
    config = parse_config('[serve]\nauto = true\nidle = "1h30m"\n')
    assert (config.serve_auto, config.serve_idle) == (True, 5400.0)


def test_a_configured_task_type_replaces_a_builtin_of_the_same_name() -> None:
    config = parse_config('[summary.task_types.terraform]\nvariables = ["tf_only"]\n')
    assert config.task_types["terraform"].variables == ("tf_only",)
    assert config.task_types["ansible"] is BUILTIN_TASK_TYPES["ansible"]


@pytest.mark.parametrize(
    ("text", "line", "needles"),
    [
        ("[secrets]\npatterns = [1, 2]\n", 2, ["secrets.patterns", "list of strings"]),
        ("[secrets]\npatterns = 'x'\n", 2, ["secrets.patterns", "not a string"]),
        ("[secrets]\ndefaults = 'yes'\n", 2, ["secrets.defaults", "true or false"]),
        ("[secrets]\npattern = ['x']\n", 2, ["secrets.pattern", "not a known setting"]),
        ("[secret]\npatterns = ['x']\n", 1, ["secret ", "not a known setting"]),
        ("\n\n[summary]\ntask_types = 3\n", 4, ["summary.task_types", "must be a table"]),
        ("[summary.task_types.x]\nvariables = ['a']\ncolour = 'red'\n", 3,
         ["summary.task_types.x.colour", "not a known setting"]),
        ('[summary.task_types."bad name"]\nvariables = []\n', 1,
         ["summary.task_types.bad name", "letters, digits"]),
        ("[serve]\nauto = 'yes'\n", 2, ["serve.auto", "true or false"]),
        ("[serve]\nauto = true\nidle = '0s'\n", 3, ["serve.idle", "longer than 0s"]),
        ("[serve]\nidle = 'soon'\n", 2, ["serve.idle", "not a duration"]),
        ("[serve]\nauto_start = true\n", 2, ["serve.auto_start", "not a known setting"]),
        ("[secrets\npatterns = []\n", 1, ["not valid TOML"]),
        ("a = 1\nb = = 2\n", 2, ["not valid TOML", "line 2"]),
    ],
)  # fmt: skip
def test_mistakes_name_the_key_and_line(text: str, line: int, needles: list[str]) -> None:
    with pytest.raises(InvalidConfig) as caught:
        parse_config(text, source="cfg.toml")
    message = str(caught.value)
    assert caught.value.line == line
    assert message.startswith(f"cfg.toml:{line}:")
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_unreadable_and_non_utf8_files_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_bytes(b"[secrets]\npatterns = ['\xff']\n")
    with pytest.raises(InvalidConfig, match=r"config.toml:2: is not UTF-8"):
        load_config(tmp_path)
    (tmp_path / CONFIG_FILE).unlink()
    (tmp_path / CONFIG_FILE).mkdir()
    with pytest.raises(InvalidConfig, match="cannot be read"):
        load_config(tmp_path)


def test_the_store_reads_its_config_once(store_dir: Path) -> None:
    (store_dir / CONFIG_FILE).write_text(GOOD, encoding="utf-8")
    with Store.open(store_dir) as store:
        assert store.config.task_types["deploy"].name == "deploy"
        assert store.secrets().is_secret("PG_DSN")
        (store_dir / CONFIG_FILE).write_text("broken = [", encoding="utf-8")
        assert store.secrets().is_secret("PG_DSN")  # read once per open store


def test_commands_use_the_config_and_refuse_a_bad_one(store_dir: Path) -> None:
    s = str(store_dir)
    variables = ["--var", "PG_DSN", "postgres://u:pw@h/db", "--var", "region", "eu"]
    ok(ckpt("--store", s, "commit", *variables))
    assert "postgres://" in ok(ckpt("--store", s, "load")).stdout
    (store_dir / CONFIG_FILE).write_text(GOOD, encoding="utf-8")
    assert "postgres://" not in ok(ckpt("--store", s, "load")).stdout
    deploy = ok(ckpt("--store", s, "summary", "--for", "release")).stdout
    assert 'region = "eu"' in deploy
    assert "context for release" in deploy
    (store_dir / CONFIG_FILE).write_text("[secrets]\npatterns = 7\n", encoding="utf-8")
    for command in (["summary"], ["load"], ["log"]):
        assert_error(
            ckpt("--store", s, *command), 2, f"{store_dir / CONFIG_FILE}:2:", "secrets.patterns"
        )
    ok(ckpt("--store", s, "load", "--reveal"))  # a bad config never blocks --reveal


def test_the_default_probe_bound_is_the_probes_own() -> None:
    # config.py keeps its own copy so that reading a config does not import the probes
    from ckptstore import config, probes

    assert config.DEFAULT_BOUND == probes.DEFAULT_BOUND
    assert parse_config("").probe_bound == probes.DEFAULT_BOUND
