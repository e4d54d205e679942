"""A real coturn `turnserver` for tests (Debian package coturn): TURN REST API credentials
(`use-auth-secret`), free ports, its own log file, nothing read from /etc, stopped for sure.

    with Coturn(secret="s3cret") as turn:
        turn.uri("tcp")          # "turn:127.0.0.1:PORT?transport=tcp"
        turn.log_text()          # allocations: "... new, realm=<...>, username=<exp:id> ..."

`host` is the address coturn listens and relays on; `prefix` runs it elsewhere, e.g.
`prefix=["ip", "netns", "exec", "ns1"]` with `host` an address of that namespace (readiness
is read from the log, so it needs no route from the test process).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tests.helpers.server import ARTIFACTS_DIR, HOST, stop_group

REALM = "hubbub.test"
# Printed once every listener (TCP, UDP, TLS) is open.
_READY = "Total General servers"


def free_tcp_udp_port(host: str = HOST) -> int:
    """A port free for both TCP and UDP on `host` a moment ago (TURN listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for TCP and UDP on {host}")


class Coturn:
    def __init__(
        self,
        *,
        secret: str,
        host: str = HOST,
        port: int | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_port: int | None = None,
        prefix: Sequence[str] = (),
        name: str = "coturn",
    ) -> None:
        binary = shutil.which("turnserver") or "/usr/bin/turnserver"
        if not os.access(binary, os.X_OK):
            raise RuntimeError("turnserver is not installed (Debian package coturn)")
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        self.binary = binary
        self.secret = secret
        self.host = host
        self.prefix = list(prefix)
        # Elsewhere (a namespace of its own) the standard ports are free, and `host` may not
        # even exist here to look for a free port on.
        self.port = port if port is not None else (
            3478 if self.prefix else free_tcp_udp_port(host))
        self.tls = tls_cert is not None
        if not self.tls:
            self.tls_port: int | None = None
        elif tls_port is not None:
            self.tls_port = tls_port
        else:
            self.tls_port = 5349 if self.prefix else free_tcp_udp_port(host)
        self._tls_files = (tls_cert, tls_key)
        self.log_path = ARTIFACTS_DIR / f"{name}-{self.port}.log"
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses -------------------------------------------------------------------------

    def uri(self, transport: str = "udp") -> str:
        """`turn:` URI of this server for `transport` ("udp" | "tcp")."""
        return f"turn:{self._uri_host}:{self.port}?transport={transport}"

    def tls_uri(self) -> str:
        if self.tls_port is None:
            raise RuntimeError("started without tls_cert")
        return f"turns:{self._uri_host}:{self.tls_port}?transport=tcp"

    @property
    def _uri_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    # -- the log ---------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def allocations(self, username: str | None = None) -> list[str]:
        """Log lines of allocations coturn granted (`session N: new, ... username=<u>`)."""
        found = re.findall(r"^.*session \d+: new, realm=<[^>]*>, username=<([^>]*)>.*$",
                           self.log_text(), re.MULTILINE)
        return [u for u in found if username is None or u == username]

    def peer_usage(self, username: str) -> list[tuple[int, int]]:
        """(packets, bytes) the relay received from peers, per closed session of `username`:
        coturn writes `peer usage: ... rp=N, rb=N` when a session ends."""
        pattern = (r"peer usage: realm=<[^>]*>, username=<" + re.escape(username)
                   + r">, rp=(\d+), rb=(\d+)")
        return [(int(p), int(b)) for p, b in re.findall(pattern, self.log_text())]

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.log_text(), re.MULTILINE)
            if match is not None:
                return match
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pattern!r} not in {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- lifecycle -------------------------------------------------------------------------

    def command(self) -> list[str]:
        assert self._dir is not None
        empty_config = self._dir / "turnserver.conf"
        empty_config.touch()
        args = [
            *self.prefix, self.binary,
            "-c", str(empty_config),          # never /etc/turnserver.conf
            "-n",                             # no configuration file at all
            "--listening-ip", self.host, "--relay-ip", self.host,
            "--listening-port", str(self.port),
            # draft-uberti-behave-turn-rest-00: username "expiry:id", HMAC-SHA1 password.
            "--use-auth-secret", f"--static-auth-secret={self.secret}",
            "--realm", REALM,
            "--allow-loopback-peers",         # it relays to hubbub on 127.0.0.1 in tests
            "--no-cli", "--no-rfc5780",       # no admin port, no RFC 5780 alternate ports
            "--no-dtls",
            "--log-file", str(self.log_path), "--simple-log", "--no-stdout-log",
            "--verbose",                      # session lines: new allocation, usage, close
            "--pidfile", str(self._dir / "turnserver.pid"),
            "--userdb", str(self._dir / "turndb"),   # not /var/lib/turn/turndb
            "--no-software-attribute",
        ]
        cert, key = self._tls_files
        if cert is not None and key is not None:
            args += ["--tls-listening-port", str(self.tls_port), "--cert", str(cert),
                     "--pkey", str(key)]
        else:
            args += ["--no-tls"]
        return args

    def start(self, timeout: float = 10.0) -> Coturn:
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path.unlink(missing_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="hubbub-coturn-"))
        self._proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while _READY not in self.log_text():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"turnserver did not start (log {self.log_path}):\n"
                                   f"{self.log_tail()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 5 s. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


    def __enter__(self) -> Coturn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
