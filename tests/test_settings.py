"""Settings of `hubbub serve`: flag > HUBBUB_* env > config file (TOML/YAML) > default, the
errors an operator sees, `hubbub config show` and `--version` (hubbub.settings, hubbub.cli)."""

from __future__ import annotations

import argparse
import json
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from hubbub.cli import _serve_args, config_of, main
from hubbub.control.node import Node

TOML = """\
http_port = 8100
media_port = 11000
jwt_minutes = 5
announce_ip = ["192.0.2.1"]
log-format = "json"

[sfu]
video_cache_size = 512

[sfu.multiplexer]
hold = 2.0
switch_margin_db = 4.0

[webhooks]
max_attempts = 3
"""

YAML = """\
http_port: 8100
media_port: 11000
jwt_minutes: 5
announce_ip: [192.0.2.1]
log-format: json
sfu:
  video_cache_size: 512
  multiplexer: {hold: 2.0, switch_margin_db: 4.0}
webhooks:
  max_attempts: 3
"""


@pytest.fixture(autouse=True)
def no_hubbub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own HUBBUB_* settings must not leak into these tests."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("HUBBUB_") and name.upper() != "HUBBUB_NO_SPEEDUPS":
            monkeypatch.delenv(name)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("name", "text"), [("hubbub.toml", TOML), ("hubbub.yaml", YAML)])
def test_flag_beats_env_beats_file_beats_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str) -> None:
    path = write(tmp_path, name, text)
    monkeypatch.setenv("HUBBUB_HTTP_PORT", "8200")
    monkeypatch.setenv("HUBBUB_JWT_MINUTES", "7")
    monkeypatch.setenv("HUBBUB_SFU__MULTIPLEXER__HOLD", "3.5")
    config = config_of(["--config", path, "--http-port", "8300", "--media-timeout", "4"])
    assert config.control.http_port == 8300  # flag over env and file
    assert config.auth.jwt_minutes == 7  # env over file
    assert config.media.port == 11000  # file over default
    assert config.media.announced_ips == ["192.0.2.1"]
    assert config.log_format == "json"  # a dashed key is the flag's name too
    assert config.control.host == "0.0.0.0"  # default
    assert config.webhooks.max_attempts == 3
    # The sfu's knobs reach the node's Streams; media_timeout comes from --media-timeout.
    node = Node(config)
    sfu = node.streams.config
    assert sfu.multiplexer.hold == 3.5  # env over file
    assert sfu.multiplexer.switch_margin_db == 4.0  # file
    assert sfu.multiplexer.attack == 0.01  # default
    assert sfu.video_cache_size == 512
    assert sfu.media_timeout == 4.0


def test_a_flag_given_equal_to_its_default_still_beats_env(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBBUB_MEDIA_PORT", "12000")
    assert config_of(["--media-port", "10000"]).media.port == 10000


def test_env_names_from_before_the_config_file_still_work(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HUBBUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUBBUB_DATABASE_URL", "postgresql+asyncpg://u:pw@db/hubbub")
    monkeypatch.setenv("HUBBUB_API_SECRET", "s3cret-api")
    monkeypatch.setenv("HUBBUB_TURN_SECRET", "s3cret-turn")
    config = config_of([])
    assert config.auth.data_dir == str(tmp_path)
    assert config.auth.database_url == "postgresql+asyncpg://u:pw@db/hubbub"
    assert config.auth.api_secret == "s3cret-api"
    assert config.auth.turn_secret == "s3cret-turn"


def test_redis_url_from_its_old_env_name(monkeypatch: pytest.MonkeyPatch) -> None:
    args = resolved([], monkeypatch, HUBBUB_REDIS_URL="redis://127.0.0.1:6390/0")
    assert args.redis == "redis://127.0.0.1:6390/0"
    args = resolved([], monkeypatch, HUBBUB_REDIS="redis://127.0.0.1:6391/0")
    assert args.redis == "redis://127.0.0.1:6391/0"  # the new name wins


def resolved(argv: list[str], monkeypatch: pytest.MonkeyPatch,
             **env: str) -> argparse.Namespace:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    _serve_args(parser)
    args = parser.parse_args(argv)
    out: argparse.Namespace = args.flags.resolve(args)
    return out


def test_lists_and_off_ports_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBBUB_ANNOUNCE_IP", "192.0.2.1, 192.0.2.2")
    monkeypatch.setenv("HUBBUB_OPEN_VIEWING", '["demo*", "public-*"]')
    monkeypatch.setenv("HUBBUB_RTMP_PORT", "off")
    monkeypatch.setenv("HUBBUB_ALLOW_ANY_STREAM", "true")
    config = config_of([])
    assert config.media.announced_ips == ["192.0.2.1", "192.0.2.2"]
    assert config.auth.open_viewing == ["demo*", "public-*"]
    assert config.control.rtmp_port == -1
    assert config.control.allow_any_stream is True


def test_every_serve_flag_is_a_setting() -> None:
    parser = argparse.ArgumentParser()
    _serve_args(parser)
    flags = parser.get_default("flags")
    options = {a.dest for a in parser._actions if a.option_strings} - {
        "help", "config", "worker_index"}
    assert options <= set(flags.fields)
    assert {"sfu", "webhooks", "recording"} <= set(flags.fields)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors and --version
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_an_unknown_key_in_the_file_is_refused_by_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "hubbub.toml", "media_prot = 5\n[sfu.multiplexer]\nhodl = 1\n")
    code, _, err = run(["config", "show", "--config", path], capsys)
    assert code == 2
    assert f"media_prot (in {path}): unknown setting (did you mean media_port?)" in err
    assert f"sfu.multiplexer.hodl (in {path}): unknown setting" in err
    assert "Traceback" not in err


def test_a_bad_value_names_the_env_var_or_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "hubbub.yaml", "sfu:\n  video_cache_size: 500\n")
    monkeypatch.setenv("HUBBUB_MEDIA_PORT", "ten thousand")
    code, _, err = run(["serve", "--config", path], capsys)
    assert code == 2
    assert "media_port (env HUBBUB_MEDIA_PORT): Input should be a valid integer" in err
    assert f"(in {path}): video_cache_size must be a power of two, got 500" in err
    monkeypatch.delenv("HUBBUB_MEDIA_PORT")
    monkeypatch.setenv("HUBBUB_SFU__MULTIPLEXER__SPEECH_ON_DBOV", "-70")
    code, _, err = run(["serve"], capsys)
    assert code == 2
    assert "env HUBBUB_SFU__MULTIPLEXER__SPEECH_ON_DBOV" in err
    assert "speech_off_dbov <= speech_on_dbov" in err


def test_a_broken_or_missing_file_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "hubbub.toml", "media_port = \n")
    code, _, err = run(["config", "show", "--config", path], capsys)
    assert (code, err.startswith(f"hubbub config show: {path} is not valid TOML")) == (2, True)
    code, _, err = run(["serve", "--config", str(tmp_path / "none.toml")], capsys)
    assert code == 2 and "cannot read config file" in err
    code, _, err = run(["serve", "--config", write(tmp_path, "hubbub.ini", "")], capsys)
    assert code == 2 and "a config file is .toml, .yaml or .yml" in err


def test_sfu_media_timeout_is_refused_for_the_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "hubbub.toml", "[sfu]\nmedia_timeout = 3\n")
    code, _, err = run(["serve", "--config", path], capsys)
    assert code == 2 and "set media_timeout (--media-timeout) instead" in err


def test_a_bad_log_level_or_format_exits_2_with_the_choices(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(["serve", "--log-level", "loud"], capsys)
    assert code == 2
    assert "argument --log-level: invalid choice: 'loud'" in err
    assert "'debug', 'info', 'warning', 'error', 'critical'" in err
    assert run(["config", "show", "--log-level", "DEBUG"], capsys)[0] == 0
    monkeypatch.setenv("HUBBUB_LOG_FORMAT", "xml")
    code, _, err = run(["serve"], capsys)
    assert code == 2
    assert "log_format (env HUBBUB_LOG_FORMAT): 'xml' is not one of text, json" in err


def test_config_show_masks_secrets_and_loads_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "hubbub.toml", 'api_secret = "file-api-secret"\n'
                 'database_url = "postgresql+asyncpg://hub:db-password@db:5432/hubbub"\n'
                 'turn_secret = "turn-shared-secret"\nmedia_port = 11000\n'
                 "[sfu.multiplexer]\nhold = 2.0\n")
    monkeypatch.setenv("HUBBUB_REDIS_URL", "redis://:redis-password@127.0.0.1:6379/0")
    code, out, err = run(["config", "show", "--config", path,
                          "--metrics-token", "scrape-token", "--rtmp-port", "off"], capsys)
    assert (code, err) == (0, "")
    for secret in ("file-api-secret", "db-password", "turn-shared-secret", "redis-password",
                   "scrape-token"):
        assert secret not in out
    shown = tomllib.loads(out)
    assert shown["api_secret"] == shown["turn_secret"] == shown["metrics_token"] == "***"
    assert shown["database_url"] == "postgresql+asyncpg://hub:***@db:5432/hubbub"
    assert shown["redis"] == "redis://:***@127.0.0.1:6379/0"
    assert shown["media_port"] == 11000 and shown["sfu"]["multiplexer"]["hold"] == 2.0
    assert shown["sfu"]["video_cache_size"] == 1024 and shown["rtmp_port"] == -1
    # What it prints is a config file that gives the same settings (secrets aside).
    again = write(tmp_path, "shown.toml", out)
    code, out_again, _ = run(["config", "show", "--config", again], capsys)
    assert code == 0 and tomllib.loads(out_again) == shown
    code, out, _ = run(["config", "show", "--config", path, "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["api_secret"] == "***"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert (code, out.strip()) == (0, f"hubbub {version('hubbub')}")


def test_the_sample_config_file_loads() -> None:
    sample = Path(__file__).resolve().parents[1] / "deploy" / "hubbub.toml"
    config = config_of(["--config", str(sample)])
    assert config.media.announced_ips == ["203.0.113.10"]
    assert config.auth.data_dir == "/var/lib/hubbub"
    assert config.log_format == "json"
    assert config.sfu.multiplexer.hold == 1.0 and config.sfu.video_cache_size == 1024
    assert config.recording.directory == "recordings"


def test_the_file_from_hubbub_config_and_other_hubbub_vars_left_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBBUB_CONFIG", write(tmp_path, "hubbub.yml", "media_port: 11500\n"))
    monkeypatch.setenv("HUBBUB_URL", "ws://127.0.0.1:8080")  # the client's, not a setting
    monkeypatch.setenv("HUBBUB_SFU", '{"audio_cache_size": 256}')  # a whole table as JSON
    config = config_of([])
    assert config.media.port == 11500
    assert config.sfu.audio_cache_size == 256


def test_off_ports_in_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "hubbub.yaml", "rtmp_port: off\nmedia_tcp_port: 'off'\n")
    config = config_of(["--config", path])
    assert (config.control.rtmp_port, config.media.tcp_port) == (-1, -1)
