"""Start Debian's Janus (1.1.x) for the bench: its own config dir, loopback only, VideoRoom +
HTTP transport only, ICE-lite, a restricted RTP port range and a freshly generated DTLS cert.

    with janus_server.running(rtp_ports=(20000, 22999), cpu=1) as server:
        server.url   # http://127.0.0.1:<port>/janus
        server.pid   # for /proc/<pid>/stat
"""

from __future__ import annotations

import contextlib
import datetime
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TEMPLATES = Path(__file__).resolve().parent
LIB_DIRS = [Path("/usr/lib/x86_64-linux-gnu/janus"), Path("/usr/lib/janus"),
            Path("/usr/local/lib/janus")]
BINARY = shutil.which("janus") or "/usr/bin/janus"


@dataclass
class JanusServer:
    url: str
    pid: int
    config_dir: Path
    log_path: Path


def lib_dir() -> Path:
    for candidate in LIB_DIRS:
        if (candidate / "plugins" / "libjanus_videoroom.so").exists():
            return candidate
    raise FileNotFoundError("Janus VideoRoom plugin not found (apt install janus)")


def available() -> bool:
    try:
        lib_dir()
    except FileNotFoundError:
        return False
    return Path(BINARY).exists()


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_certificate(cert_path: Path, key_path: Path) -> None:
    """A self-signed P-256 certificate for Janus's DTLS (its fingerprint goes in its SDP)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "janus-bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))


def write_config(root: Path, http_port: int, rtp_ports: tuple[int, int], event_loops: int = 0,
                 debug_level: int = 3) -> Path:
    """Fill the templates into `root`/etc; the plugin and transport folders hold symlinks to the
    VideoRoom and HTTP libraries only, so nothing else is loaded."""
    lib = lib_dir()
    etc, plugins, transports, empty = (root / n for n in ("etc", "plugins", "transports", "empty"))
    for d in (etc, plugins, transports, empty):
        d.mkdir(parents=True, exist_ok=True)
    (plugins / "libjanus_videoroom.so").symlink_to(lib / "plugins" / "libjanus_videoroom.so")
    (transports / "libjanus_http.so").symlink_to(lib / "transports" / "libjanus_http.so")
    _write_certificate(root / "cert.pem", root / "key.pem")
    values = {
        "configs": str(etc), "plugins": str(plugins), "transports": str(transports),
        "empty": str(empty), "debug_level": str(debug_level),
        "admin_secret": secrets.token_hex(8),
        "nice_debug": os.environ.get("JANUS_NICE_DEBUG", "false"), "event_loops": str(event_loops),
        "cert_pem": str(root / "cert.pem"), "cert_key": str(root / "key.pem"),
        "rtp_ports": f"{rtp_ports[0]}-{rtp_ports[1]}", "http_port": str(http_port),
    }
    for name in ("janus.jcfg", "janus.transport.http.jcfg", "janus.plugin.videoroom.jcfg"):
        text = string.Template((TEMPLATES / f"{name}.in").read_text()).substitute(values)
        (etc / name).write_text(text)
    return etc


@contextlib.contextmanager
def running(rtp_ports: tuple[int, int] = (20000, 22999), cpu: int | None = None,
            event_loops: int = 0, log_path: Path | None = None,
            debug_level: int = 3) -> Iterator[JanusServer]:
    """Run Janus (pinned to `cpu` with taskset when given) until the block exits."""
    root = Path(tempfile.mkdtemp(prefix="janus-bench-"))
    http_port = _free_tcp_port()
    etc = write_config(root, http_port, rtp_ports, event_loops, debug_level)
    log_path = log_path or root / "janus.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    args = [BINARY, "-F", str(etc), "-C", str(etc / "janus.jcfg")]
    if cpu is not None and shutil.which("taskset"):
        args = ["taskset", "-c", str(cpu), *args]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{http_port}/janus"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"janus exited with {proc.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(f"{url}/info", timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"janus did not answer on {url}; see {log_path}") from None
                time.sleep(0.05)
        yield JanusServer(url, proc.pid, etc, log_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
