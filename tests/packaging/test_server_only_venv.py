"""`pip install hubbub` (no extras) in a venv of its own serves and forwards media, and has no
aiortc. The publisher and viewer run here, in the test's environment (which has the client)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.server import RunningServer, free_tcp_port, free_udp_port, stop_group
from tests.packaging import image
from tests.packaging.forwarding import assert_forwards_media
from tests.packaging.venv import build_server_venv, clean_env, wheelhouse_missing

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def server_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The python of a server-only venv; skipped without a wheelhouse (failed under CI)."""
    reason = wheelhouse_missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    yield build_server_venv(tmp_path_factory.mktemp("server-only"))


def run(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), *args], capture_output=True, text=True,
                          env=clean_env(), timeout=60)


def test_the_client_extra_is_not_installed(server_python: Path) -> None:
    for module in ("aiortc", "numpy", "asyncpg"):
        imported = run(server_python, "-c", f"import {module}")
        assert imported.returncode != 0, f"{module} is importable in a server-only install"
        assert "ModuleNotFoundError" in imported.stderr
    where = run(server_python, "-c", "import hubbub, hubbub._speedups; print(hubbub.__file__)")
    assert where.returncode == 0, where.stderr  # the C fast path was built too
    assert str(server_python.parents[1]) in where.stdout  # the venv's copy, not the checkout


def test_publish_says_to_install_the_client_extra(server_python: Path) -> None:
    hubbub = server_python.parent / "hubbub"
    published = subprocess.run([str(hubbub), "publish", "--stream", "x", "--url",
                                "ws://127.0.0.1:1/ws/v2/pub"], capture_output=True, text=True,
                               env=clean_env(), timeout=60)
    assert published.returncode == 2
    assert "pip install 'hubbub[client]'" in published.stderr
    assert "Traceback" not in published.stderr


async def test_the_server_only_install_forwards_media(server_python: Path) -> None:
    srv = RunningServer(name="packaging-server-only", rtmp_port=0, env=clean_env())
    assert srv.args[0] != str(server_python)
    srv.args[0] = str(server_python)  # `<venv>/bin/python -m hubbub serve ...`
    async with srv:
        await assert_forwards_media(srv)
    assert "Traceback" not in srv.log_text()


def test_the_image_command_serves_and_passes_its_healthcheck(server_python: Path,
                                                              tmp_path: Path) -> None:
    """deploy/Dockerfile's ENV, ENTRYPOINT + CMD and HEALTHCHECK, run in the server-only venv
    (what the image installs), with loopback and free ports instead of the image's."""
    env = {**clean_env(), **image.runtime_env(),
           "HUBBUB_HOST": "127.0.0.1", "HUBBUB_HTTP_PORT": str(free_tcp_port()),
           "HUBBUB_MEDIA_PORT": str(free_udp_port()),
           "HUBBUB_MEDIA_TCP_PORT": str(free_tcp_port()), "HUBBUB_RTMP_PORT": "off",
           "HUBBUB_DATA_DIR": str(tmp_path / "data")}
    bin_dir = server_python.parent
    command = image.runtime_command()
    check = image.healthcheck()
    assert check[0] == "python"
    check[0] = str(server_python)
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(bin_dir / command[0]), *command[1:]], env=env, cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(check, env=env, capture_output=True, timeout=10).returncode:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
    finally:
        stop_group(proc)
        log.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()  # SIGTERM: a clean stop
    assert (tmp_path / "data" / "tokens.db").exists()  # the data dir came from the image's ENV
