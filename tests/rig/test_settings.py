"""rig.toml is read like a server's foto3d.toml: bad input stops with a message naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from foto3d.libs.settings import ConfigError
from foto3d.rig import settings as rig_settings
from foto3d.rig.settings import RigSettings, SiteSettings

GOOD = """
rig_id = "studio-1"
probe_interval_s = 0.5

[[sites]]
name = "local"
nats = "nats://10.0.0.5:4222, nats://10.0.0.6:4222"
store = "s3://acme/datasets"
"""


def _write(rig_dir: Path, text: str) -> None:
    rig_dir.mkdir(parents=True, exist_ok=True)
    rig_settings.config_path(rig_dir).write_text(text)


def test_a_written_file_reads_back_the_same(tmp_path: Path) -> None:
    want = RigSettings(
        rig_id="studio-1",
        sites=[
            SiteSettings(name="local", nats="nats://10.0.0.5:4222", store="/srv/datasets"),
            SiteSettings(
                name="cloud", nats="tls://hub.example.com:4222", store="s3://b/p", s3_endpoint="http://m:9000"
            ),
        ],
        leaf_port=4300,
        sync_always=True,
    )
    rig_settings.save(tmp_path, want)
    assert rig_settings.load(tmp_path, env={}) == want


def test_a_hand_written_file_loads(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    got = rig_settings.load(tmp_path, env={})
    assert got.probe_interval_s == 0.5 and got.leaf_port == 4290
    assert got.sites[0].nats_urls() == ["nats://10.0.0.5:4222", "nats://10.0.0.6:4222"]
    # The leaf links default to the sites' hosts on nats-server's leafnode port.
    assert got.sites[0].leaf_urls() == ["nats-leaf://10.0.0.5:7422", "nats-leaf://10.0.0.6:7422"]
    named = SiteSettings(name="c", nats="tls://hub:4222", store="/s", leaf="tls://leaf.hub:7000")
    assert named.leaf_urls() == ["tls://leaf.hub:7000"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("probe_interval_s", "probe_intervl_s"), r"rig\.toml: unknown key 'probe_intervl_s'"),
        (GOOD.replace("probe_interval_s = 0.5", "probe_interval_s = 0"), r"rig\.toml: .*probe_interval_s"),
        (GOOD.replace('store = "s3', 'stor = "s3'), r"rig\.toml: .*stor"),
        (GOOD.replace('rig_id = "studio-1"', 'rig_id = "Studio 1"'), r"rig\.toml: .*rig_id"),
        (GOOD.split("[[sites]]")[0] + "sites = []\n", r"at least one \[\[sites\]\]"),
        (
            GOOD.replace("nats://10.0.0.5:4222,", "http://10.0.0.5,"),
            r"\[\[sites\]\] 'local': .*http://10\.0\.0\.5",
        ),
        ("rig_id = ", r"rig\.toml: "),
        (
            GOOD.replace('store = "s3', 'leaf = "http://10.0.0.5:7422"\nstore = "s3'),
            r"\[\[sites\]\] 'local': leaf URL 'http://10\.0\.0\.5:7422'",
        ),
    ],
)
def test_bad_input_names_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        rig_settings.load(tmp_path, env={})


def test_a_missing_file_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rig init"):
        rig_settings.load(tmp_path / "nowhere", env={})
