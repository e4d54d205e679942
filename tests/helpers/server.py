"""Run a real `hubbub serve` process for a test.

Contract with the CLI: `python -m hubbub serve --host H --http-port P --media-port M
--allow-any-stream [...]`, and `GET /healthz` answers 200 once HTTP, WebSocket and the media
port are up. Logs go to `test-artifacts/servers/<name>-<port>.log` so CI keeps them.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts" / "servers"
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 20.0
STOP_GRACE = 5.0
_POLL_INTERVAL = 0.05

OptionValue = str | int | float | bool | None


class ServerStartError(RuntimeError):
    """The server died or never became healthy; the message ends with the log tail."""


def free_tcp_port() -> int:
    """A TCP port that was free a moment ago (the kernel picks it; races are unlikely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def free_udp_port() -> int:
    """A UDP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """`sig` to the process group `proc` leads (started with start_new_session)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to `proc`'s group, SIGKILL after STOP_GRACE; returns once it has exited."""
    if proc.poll() is not None:
        return
    signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        proc.wait()


def options_to_args(options: Mapping[str, OptionValue]) -> list[str]:
    """`{"jwt_secret": "s", "verbose": True, "x": None}` -> `["--jwt-secret", "s", "--verbose"]`.

    True is a bare flag; False and None leave the option out.
    """
    args: list[str] = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        else:
            args.extend([flag, str(value)])
    return args


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:80] or "server"


class RunningServer:
    """One `hubbub serve` subprocess. Use `with start_server() as srv:` or `async with`.

    Ports are chosen when the object is made, so URLs are known before it starts.
    """

    def __init__(
        self,
        *,
        name: str = "server",
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        allow_any_stream: bool = True,
        http_port: int | None = None,
        media_port: int | None = None,
        rtmp_port: int | None = None,
        options: Mapping[str, OptionValue] | None = None,
    ) -> None:
        self.http_port = http_port if http_port is not None else free_tcp_port()
        self.media_port = media_port if media_port is not None else free_udp_port()
        # ICE-TCP: the UDP port's number may be taken for TCP; pick one of its own.
        self.media_tcp_port = free_tcp_port() if media_port is None else media_port
        # RTMP ingest: off unless asked for (many test servers run at once; 1935 is shared).
        # `rtmp_port=0` picks a free port.
        self.rtmp_port: int | None = (
            None if rtmp_port is None else rtmp_port or free_tcp_port())
        self.startup_timeout = startup_timeout
        self.log_path = ARTIFACTS_DIR / f"{_safe_name(name)}-{self.http_port}.log"
        self.args: list[str] = [
            sys.executable, "-m", "hubbub", "serve",
            "--host", HOST,
            "--http-port", str(self.http_port),
            "--media-port", str(self.media_port),
            "--media-tcp-port", str(self.media_tcp_port),
            "--rtmp-port", "off" if self.rtmp_port is None else str(self.rtmp_port),
        ]
        if allow_any_stream:
            self.args.append("--allow-any-stream")
        self.args += options_to_args(options or {})
        self.args += list(extra_args)
        if "--data-dir" not in self.args and "data_dir" not in (options or {}):
            # Each server gets its own token store and keys, never the checkout's ./hubbub-data.
            self.args += ["--data-dir", str(ARTIFACTS_DIR / "data" / self.log_path.stem)]
        self._env = dict(os.environ)
        self._env["PYTHONUNBUFFERED"] = "1"
        if env:
            self._env.update(env)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- addresses -------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def ws_pub_url(self) -> str:
        return f"ws://{HOST}:{self.http_port}/ws/v2/pub"

    @property
    def ws_sub_url(self) -> str:
        return f"ws://{HOST}:{self.http_port}/ws/v2/sub"

    def rtmp_url(self, stream: str, query: str = "") -> str:
        """`rtmp://127.0.0.1:<rtmp_port>/v2/pub/<stream>[?query]` (needs `rtmp_port=`)."""
        if self.rtmp_port is None:
            raise RuntimeError("this server runs without RTMP: pass rtmp_port=0")
        return f"rtmp://{HOST}:{self.rtmp_port}/v2/pub/{stream}" + (f"?{query}" if query else "")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """Exit status once the process has ended (negative = killed by that signal)."""
        return self._proc.poll() if self._proc else None

    def log_text(self) -> str:
        """Everything the server printed so far (stdout and stderr interleaved)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- lifecycle -------------------------------------------------------------------------

    def spawn(self) -> None:
        """Start the process without waiting for health (see `wait_healthy`)."""
        if self._proc is not None:
            raise RuntimeError("server already started")
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self._log.write(("$ " + " ".join(self.args) + "\n").encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=self._env,
            start_new_session=True,  # own process group: stop() reaches any children too
        )

    def probe(self) -> bool:
        """One `GET /healthz`; True on 200. Raises ServerStartError if the process died."""
        if self._proc is None:
            raise RuntimeError("server not started")
        if self._proc.poll() is not None:
            raise ServerStartError(
                f"hubbub serve exited with {self._proc.returncode} before /healthz answered "
                f"(log {self.log_path}):\n{self.log_tail()}"
            )
        try:
            with urllib.request.urlopen(self.http_url + "/healthz", timeout=0.5) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _timeout_error(self) -> ServerStartError:
        self.stop()
        return ServerStartError(
            f"hubbub serve did not answer 200 on {self.http_url}/healthz within "
            f"{self.startup_timeout:.0f} s (log {self.log_path}):\n{self.log_tail()}"
        )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not self.probe():
            if time.monotonic() > deadline:
                raise self._timeout_error()
            time.sleep(_POLL_INTERVAL)

    async def wait_healthy_async(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not await asyncio.to_thread(self.probe):
            if time.monotonic() > deadline:
                raise self._timeout_error()
            await asyncio.sleep(_POLL_INTERVAL)

    def start(self) -> RunningServer:
        self.spawn()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    async def start_async(self) -> RunningServer:
        self.spawn()
        try:
            await self.wait_healthy_async()
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        return self

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 5 s. Idempotent. Returns the exit status."""
        proc = self._proc
        if proc is not None:
            stop_group(proc)
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode if proc is not None else None


    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> RunningServer:
        return await self.start_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        return f"RunningServer(http={self.http_url}, media_port={self.media_port}, pid={self.pid})"


def start_server(
    *,
    name: str = "server",
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
    allow_any_stream: bool = True,
    **options: OptionValue,
) -> RunningServer:
    """A not-yet-started server; entering it (`with` / `async with`) starts it and waits.

    `options` become CLI flags: `start_server(jwt_secret="s", verbose=True)` adds
    `--jwt-secret s --verbose`. `extra_args` are appended verbatim.
    """
    return RunningServer(
        name=name,
        extra_args=extra_args,
        env=env,
        startup_timeout=startup_timeout,
        allow_any_stream=allow_any_stream,
        options=options,
    )
