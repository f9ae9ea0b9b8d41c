"""Settings and query parameters: overrides apply, bad values are named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from foto3d.libs.config import ConfigError, Settings
from foto3d.services.log_collector.fts import match_expression
from foto3d.services.log_collector.params import BadParam, parse_time, query_from_params
from foto3d.services.log_collector.settings import SETTINGS


def settings_with(tmp_path: Path, toml: str) -> Settings:
    (tmp_path / "foto3d.toml").write_text(toml)
    return Settings.load(data_dir=tmp_path, nats="nats://127.0.0.1:4222")


def test_config_section_and_env_overrides(tmp_path: Path) -> None:
    s = settings_with(
        tmp_path, '[log_collector]\nretention_days = 30\nmax_db_mb = 100\nsynchronous = "full"\n'
    )
    cfg = SETTINGS.load(s, env={})
    assert (cfg.retention_days, cfg.max_db_mb, cfg.synchronous, cfg.otlp_endpoint) == (30, 100, "full", None)
    env = {
        "FOTO3D_LOG_RETENTION_DAYS": "2.5",
        "FOTO3D_LOG_MAX_DB_MB": "0",
        "FOTO3D_LOG_OTLP_ENDPOINT": "http://otel:4318",
    }
    cfg = SETTINGS.load(s, env=env)
    assert (cfg.retention_days, cfg.max_db_mb, cfg.otlp_endpoint) == (2.5, 0, "http://otel:4318")


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        ("[log_collector]\nretention_days = -1\n", {}, "retention_days"),
        ("[log_collector]\nretension_days = 3\n", {}, "retension_days"),
        ("", {"FOTO3D_LOG_MAX_DB_MB": "lots"}, "FOTO3D_LOG_MAX_DB_MB"),
        ("", {"FOTO3D_LOG_OTLP_ENDPOINT": "otel:4318"}, "scheme"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, toml: str, env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        SETTINGS.load(settings_with(tmp_path, toml), env=env)


def test_query_params() -> None:
    q = query_from_params({"job": "j", "level": "warn", "since": "2h", "limit": "5", "q": "x"})
    assert (q.job_id, q.min_level, q.limit, q.text) == ("j", 30, 5, "x")
    assert q.since is not None and abs(parse_time("2h", now=q.since + 7200) - q.since) < 1e-6
    assert parse_time("2026-11-26T10:00:00Z") == 1795687200.0
    assert parse_time("1700000000.5") == 1700000000.5
    with pytest.raises(BadParam, match="since: is later than until"):
        query_from_params({"since": "1h", "until": "2h"})


def test_match_expression_quotes_everything() -> None:
    assert match_expression('foo-bar "x') == '"foo-bar" """x"'
    assert match_expression("timeo* NEAR(") == '"timeo"* "NEAR("'
    assert match_expression('" * -') is None
