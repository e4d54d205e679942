"""deploy/: the systemd unit (systemd-analyze verify and security), the Dockerfile (hadolint,
the official parser, in step with .dockerignore, hubbub's env settings and the venv test's
sources), the proxy examples (nginx -t, caddy validate), the README's install steps."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.helpers.tls import self_signed
from tests.packaging import image
from tests.packaging.proxies import NGINX_CERT, NGINX_KEY, nginx_main
from tests.packaging.tools import require_tool
from tests.packaging.venv import SOURCES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DATA_DIR = "/var/lib/hubbub"


def unit_settings() -> dict[str, list[str]]:
    """deploy/hubbub.service as key -> values (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / "hubbub.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_unit_runs_hubbub_serve_hardened() -> None:
    unit = unit_settings()
    assert unit["User"] == ["hubbub"]
    assert unit["ExecStart"] == ["/opt/hubbub/bin/hubbub serve --config /etc/hubbub/hubbub.toml"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == [DATA_DIR]
    assert unit["Restart"] == ["on-failure"]
    assert int(unit["LimitNOFILE"][0]) >= 65536
    assert unit["CapabilityBoundingSet"] == [""]  # default ports need no capability
    assert "AmbientCapabilities" not in unit
    # The sample config the unit loads keeps its data where the unit may write.
    with (DEPLOY / "hubbub.toml").open("rb") as f:
        assert tomllib.load(f)["data_dir"] == DATA_DIR


def test_systemd_analyze_verifies_the_unit_and_rates_it_safe(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    executable = shutil.which("hubbub")
    assert executable, "hubbub is not on PATH (pip install -e .)"
    # verify needs ExecStart's binary to exist: the one installed here stands in for /opt's.
    unit = tmp_path / "hubbub.service"
    unit.write_text((DEPLOY / "hubbub.service").read_text().replace(
        "/opt/hubbub/bin/hubbub", executable))
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr  # warnings too
    security = subprocess.run([analyze, "security", "--offline=true", "--threshold=20",
                               str(unit)], capture_output=True, text=True, timeout=60)
    assert security.returncode == 0, security.stdout[-2000:]  # exposure <= 2.0 of 10


def test_hadolint_passes_the_dockerfile() -> None:
    hadolint = require_tool("hadolint")
    lint = subprocess.run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_image_is_slim_multi_stage_non_root_and_exposes_the_media_port() -> None:
    build, run = image.stages()
    assert all("-slim" in stage[0].value[0] for stage in (build, run))
    assert [c.value for c in build if c.cmd == "COPY"] == [(*SOURCES, "./"), ("src", "./src")]
    cmds = {c.cmd: c for c in run}
    assert cmds["USER"].value[0].split(":")[0] not in ("root", "0")
    assert set(cmds["EXPOSE"].value) == {"8080/tcp", "10000/udp", "10000/tcp", "1935/tcp"}
    env = dict(zip(cmds["ENV"].value[::2], cmds["ENV"].value[1::2], strict=True))
    assert cmds["VOLUME"].value == (env["HUBBUB_DATA_DIR"],) == (DATA_DIR,)
    assert env["HUBBUB_HTTP_PORT"] == "8080"
    assert "/healthz" in image.healthcheck()[-1]
    assert image.runtime_command() == ["hubbub", "serve"]
    assert not any(c.cmd in ("COPY", "ADD") and "--from" not in str(c.flags) for c in run)


def test_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*"  # everything else stays out (.git, test-artifacts, node_modules)
    assert {line[1:].rstrip("/") for line in lines if line.startswith("!")} == {*SOURCES, "src"}


def test_the_image_env_names_are_hubbub_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in image.runtime_env().items() if k.startswith("HUBBUB_")}
    shown = subprocess.run([sys.executable, "-m", "hubbub", "config", "show"], capture_output=True,
                           text=True, timeout=60, env={**os.environ, **env}, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    settings = tomllib.loads(shown.stdout)
    for name, value in env.items():
        assert str(settings[name.removeprefix("HUBBUB_").lower()]) == value, name


def test_nginx_accepts_the_example(tmp_path: Path) -> None:
    nginx = require_tool("nginx")
    tls = self_signed(tmp_path)
    site = (DEPLOY / "proxy" / "nginx.conf").read_text()
    site = site.replace(NGINX_CERT, str(tls.cert)).replace(NGINX_KEY, str(tls.key))
    main = nginx_main(tmp_path, site)
    test = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(main)],
                          capture_output=True, text=True, timeout=60)
    assert test.returncode == 0, test.stderr
    assert "[warn]" not in test.stderr, test.stderr


def test_caddy_validates_the_example(tmp_path: Path) -> None:
    caddy = require_tool("caddy")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    config = str(DEPLOY / "proxy" / "Caddyfile")
    valid = subprocess.run([caddy, "validate", "--config", config, "--adapter", "caddyfile"],
                           capture_output=True, text=True, timeout=60, env=env)
    assert valid.returncode == 0, valid.stderr[-2000:]
    formatted = subprocess.run([caddy, "fmt", config], capture_output=True, text=True,
                               timeout=60, env=env)
    assert formatted.stdout == Path(config).read_text()  # `caddy fmt` would change nothing


def test_the_readme_install_steps_match_the_deploy_files() -> None:
    readme = (ROOT / "README.md").read_text()
    for needle in ("pip install hubbub", "pip install 'hubbub[client]'", "deploy/hubbub.service",
                   "deploy/Dockerfile", "deploy/proxy/", "--trusted-proxy", "--public-url"):
        assert needle in readme, needle
