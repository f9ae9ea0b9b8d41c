"""One settings mechanism: file and environment parsed the same way for every table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest

from foto3d.app.configdoc import library_tables, service_tables
from foto3d.libs.config import Settings
from foto3d.libs.settings import ConfigError, Env, Table


class Demo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    flag: Annotated[bool, Env("DEMO_FLAG")] = False
    count: Annotated[int, msgspec.Meta(ge=1), Env("DEMO_COUNT")] = 3
    ratio: Annotated[float, Env("DEMO_RATIO")] = 0.5
    mode: Annotated[Literal["a", "b"], Env("DEMO_MODE")] = "a"
    names: Annotated[list[str], Env("DEMO_NAMES")] = msgspec.field(default_factory=list)
    note: str | None = None


DEMO = Table("demo", Demo, "a demo table")


def load(toml: dict[str, object], env: dict[str, str]) -> Demo:
    return DEMO.read({"demo": toml}, "foto3d.toml", env)


@pytest.mark.parametrize("word", ["1", "true", "TRUE", "yes", "on", " On "])
def test_booleans_true(word: str) -> None:
    assert load({}, {"DEMO_FLAG": word}).flag is True


@pytest.mark.parametrize("word", ["0", "false", "no", "off"])
def test_booleans_false(word: str) -> None:
    assert load({"flag": True}, {"DEMO_FLAG": word}).flag is False


def test_environment_beats_file_and_parses_each_kind() -> None:
    env = {"DEMO_COUNT": "7", "DEMO_RATIO": "2", "DEMO_MODE": "b", "DEMO_NAMES": "x, y;z", "DEMO_FLAG": ""}
    cfg = load({"count": 2, "flag": True}, env)
    assert (cfg.count, cfg.ratio, cfg.mode, cfg.names, cfg.flag) == (7, 2.0, "b", ["x", "y", "z"], True)
    assert load({"count": 2}, {}).count == 2


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        ({}, {"DEMO_FLAG": "ture"}, "DEMO_FLAG='ture' is not a boolean"),
        ({}, {"DEMO_COUNT": "many"}, "DEMO_COUNT='many' is not a whole number"),
        ({}, {"DEMO_COUNT": "0"}, r"DEMO_COUNT='0'.*>= 1"),
        ({}, {"DEMO_MODE": "c"}, "DEMO_MODE='c' must be one of a, b"),
        ({"count": 0}, {}, r"foto3d.toml \[demo\].*count"),
        ({"cuont": 2}, {}, r"foto3d.toml \[demo\]: unknown key 'cuont'"),
        ({"flag": "yes"}, {}, r"\[demo\].*flag"),
    ],
)
def test_bad_values_name_the_key_or_variable(
    toml: dict[str, object], env: dict[str, str], needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        load(toml, env)


def test_a_section_that_is_not_a_table() -> None:
    with pytest.raises(ConfigError, match="must be a table"):
        DEMO.read({"demo": 3}, "foto3d.toml", {})


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "foto3d.toml").write_text('nats_ulr = "nats://x:4222"\n[queue]\nmax_attempts = 2\n')
    with pytest.raises(ConfigError, match="unknown key 'nats_ulr'"):
        Settings.load(data_dir=tmp_path)


def test_every_service_boolean_follows_one_rule(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The three old rules (error, yes/no, silently False) are one now, in every table."""
    settings = Settings.load(data_dir=tmp_path)
    checked = 0
    for table in library_tables() + service_tables():
        for p in table.params():
            if p.env is None or p.kind.name != "boolean":
                continue
            monkeypatch.setenv(p.env, "yes")
            assert getattr(table.load(settings), p.key) is True
            monkeypatch.setenv(p.env, "ture")
            with pytest.raises(ConfigError, match=p.env):
                table.load(settings)
            monkeypatch.delenv(p.env)
            checked += 1
    assert checked >= 4  # queue check_local, trainer require_gpu/keep_failed, scaler one_per_dataset


def test_an_env_marker_on_a_table_is_a_declaration_error() -> None:
    class Bad(msgspec.Struct):
        nested: Annotated[dict[str, int], Env("BAD")] = msgspec.field(default_factory=dict)

    with pytest.raises(TypeError, match="BAD"):
        Table("bad", Bad, "").params()
