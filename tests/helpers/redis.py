"""A real `redis-server` for tests (Debian package redis-server): loopback, a free port, no
persistence, stopped and restarted at will (the Redis-restart test)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from tests.helpers.server import ARTIFACTS_DIR, HOST, free_tcp_port


class RedisServer:
    def __init__(self, host: str = HOST, port: int | None = None, name: str = "redis") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.binary = binary
        self.host = host
        self.port = port if port is not None else free_tcp_port()
        self.log_path = ARTIFACTS_DIR / f"{name}-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [self.binary, "--bind", self.host, "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--logfile", str(self.log_path), "--protected-mode", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start (log {self.log_path})")
            time.sleep(0.05)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command through redis-cli (for assertions on the registry)."""
        out = subprocess.run(["redis-cli", "-h", self.host, "-p", str(self.port), *args],
                             check=True, capture_output=True, timeout=10)
        return out.stdout

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()  # no save, no goodbye: as a crash or a restart looks to the nodes
            proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


