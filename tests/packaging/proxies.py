"""deploy/proxy/'s Caddyfile and nginx.conf, run for real in front of a test server: the
example's hostname, certificate and upstream swapped for loopback ones, nothing else changed."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.server import free_tcp_port, stop_group
from tests.helpers.tls import Tls

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
EXAMPLE_HOST = "media.example.com"
EXAMPLE_UPSTREAM = "127.0.0.1:8080"
NGINX_CERT = f"/etc/letsencrypt/live/{EXAMPLE_HOST}/fullchain.pem"
NGINX_KEY = f"/etc/letsencrypt/live/{EXAMPLE_HOST}/privkey.pem"
START_TIMEOUT = 15.0


def nginx_site(tls: Tls, https_port: int, http_port: int, upstream_port: int) -> str:
    text = (DEPLOY / "proxy" / "nginx.conf").read_text()
    for old, new in ((NGINX_CERT, str(tls.cert)), (NGINX_KEY, str(tls.key)),
                     ("listen 443 ", f"listen 127.0.0.1:{https_port} "),
                     ("listen 80;", f"listen 127.0.0.1:{http_port};"),
                     (EXAMPLE_UPSTREAM, f"127.0.0.1:{upstream_port}")):
        assert old in text, old
        text = text.replace(old, new)
    return "\n".join(line for line in text.splitlines() if "listen [::]" not in line)


def nginx_main(where: Path, site: str) -> Path:
    """A whole nginx.conf around the site file, everything under `where`."""
    (where / "site.conf").write_text(site)
    main = where / "nginx.conf"
    main.write_text(f"daemon off;\npid {where}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
                    f"http {{ access_log off; include {where}/site.conf; }}\n")
    return main


def caddyfile(tls: Tls, https_port: int, upstream_port: int) -> str:
    text = (DEPLOY / "proxy" / "Caddyfile").read_text()
    site = f"{EXAMPLE_HOST} {{"
    assert site in text and EXAMPLE_UPSTREAM in text
    text = text.replace(site, f"https://127.0.0.1:{https_port} {{\n\ttls {tls.cert} {tls.key}")
    text = text.replace(EXAMPLE_UPSTREAM, f"127.0.0.1:{upstream_port}")
    # Tests run many servers at once: no admin endpoint on :2019, no redirect server on :80.
    return "{\n\tadmin off\n\tauto_https disable_redirects\n}\n\n" + text


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the proxy exited with {proc.returncode}:\n{log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the proxy did not listen on {port}:\n{log.read_text()}")


@contextmanager
def running(args: list[str], port: int, where: Path,
            env: dict[str, str] | None = None) -> Iterator[None]:
    """The proxy process, once it listens on `port`; stopped after."""
    log = where / "proxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **(env or {})})
        try:
            _wait_for_port(port, proc, log)
            yield
        finally:
            stop_group(proc)


def free_ports(count: int) -> list[int]:
    return [free_tcp_port() for _ in range(count)]
