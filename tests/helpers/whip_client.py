"""Debian's simple-whip-client (`/usr/bin/whip-client`, GStreamer webrtcbin) as a WHIP publisher.

Two things keep the packaged binary (bookworm, 0.0~git20230131-1) from running as it is:

- it aborts (SIGTRAP, exit 133) before any HTTP: "libsoup2 symbols detected. Using libsoup2
  and libsoup3 in the same process is not supported". whip-client links libsoup-2.4, and
  libnice pulls in libgupnp-igd-1.0 -> libgupnp-1.6 -> libsoup-3.0. `gupnp_stub()` builds a
  stand-in libgupnp-igd-1.0.so.4 (the four symbols libnice uses; no UPnP), put first on
  whip-client's LD_LIBRARY_PATH, so libsoup-3.0 is never loaded;
- libnice gathers no loopback candidates, so it would reach a server on 127.0.0.1 only from
  the machine's real address. Tests run it in a network
  namespace of their own (tests/helpers/netns.py) next to the server, on that namespace's
  address.

Its quirks, as a server sees them: success is exactly 201 + application/sdp; after an ETag
it sends If-Match on every request; a path-only Location keeps the endpoint's query string;
it trickles by PATCH every 100 ms unless `-n`; on SIGINT it DELETEs (and expects 200) and
exits. HTTP failures print an `[ERR]` line and still exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.helpers.server import ARTIFACTS_DIR

WHIP_CLIENT = "whip-client"

_STUB_C = r"""
/* libgupnp-igd-1.0.so.4 as libnice uses it, without UPnP: no IGD thread, so no port mapping. */
#include <stddef.h>
unsigned long gupnp_simple_igd_get_type(void) { return 0; }
void *gupnp_simple_igd_thread_new(void) { return NULL; }
void gupnp_simple_igd_add_port(void *s, const char *p, unsigned short ep, const char *li,
                               unsigned short lp, unsigned int lt, const char *d) {}
void gupnp_simple_igd_remove_port_local(void *s, const char *p, const char *li,
                                        unsigned short lp) {}
"""


def tone_pipeline(frequency: float = 440.0) -> str:
    """`-A`: a live sine as Opus RTP (whip-client's upstream example, pt 100, ssrc 1)."""
    return (f"audiotestsrc is-live=true wave=sine freq={frequency:g} ! audioconvert ! "
            "audioresample ! queue ! opusenc ! rtpopuspay pt=100 ssrc=1 ! queue ! "
            "application/x-rtp,media=audio,encoding-name=OPUS,payload=100")


def video_pipeline(width: int = 320, height: int = 240, fps: int = 30) -> str:
    """`-V`: a live test pattern as VP8 RTP (pt 96, ssrc 2), small: two cores run it all."""
    return ("videotestsrc is-live=true pattern=ball ! "
            f"video/x-raw,width={width},height={height},framerate={fps}/1 ! videoconvert ! "
            "queue ! vp8enc deadline=1 ! rtpvp8pay pt=96 ssrc=2 ! queue ! "
            "application/x-rtp,media=video,encoding-name=VP8,payload=96")


def unavailable_reason() -> str | None:
    if shutil.which(WHIP_CLIENT) is None:
        return "needs whip-client (Debian's simple-whip-client; scripts/test installs it)"
    if shutil.which("gcc") is None:
        return "needs gcc to build the libgupnp-igd stand-in whip-client runs with"
    return None


def gupnp_stub(directory: Path) -> Path:
    """Build the libgupnp-igd-1.0.so.4 stand-in in `directory`; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    library = directory / "libgupnp-igd-1.0.so.4"
    if not library.exists():
        source = directory / "gupnp-igd-stub.c"
        source.write_text(_STUB_C)
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wl,-soname,libgupnp-igd-1.0.so.4",
                        "-o", str(library), str(source)], check=True, capture_output=True,
                       timeout=60)
    return directory


class WhipClient:
    """One `whip-client` run: `async with WhipClient(...) as client:` starts it; leaving
    interrupts it (SIGINT: it DELETEs its session) and kills it if it lingers. Everything it
    prints goes to test-artifacts/servers/<name>.log (`output()`)."""

    def __init__(self, url: str, *, stub_dir: Path, name: str, token: str | None = None,
                 audio: str | None = None, video: str | None = None, trickle: bool = True,
                 netns: str | None = None, log_level: int = 4) -> None:
        self.args = [WHIP_CLIENT, "-u", url, "-o", "-l", str(log_level)]
        if token is not None:
            self.args += ["-t", token]
        if audio is not None:
            self.args += ["-A", audio]
        if video is not None:
            self.args += ["-V", video]
        if not trickle:
            self.args.append("-n")
        self.prefix: Sequence[str] = ["ip", "netns", "exec", netns] if netns else []
        self.env = dict(os.environ)
        self.env["LD_LIBRARY_PATH"] = ":".join(
            p for p in (str(stub_dir), os.environ.get("LD_LIBRARY_PATH", "")) if p)
        self.log_path = ARTIFACTS_DIR / f"whip-client-{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    async def start(self) -> Self:
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        # `ip netns exec` execs the command: the pid is whip-client's, signals reach it.
        self.proc = await asyncio.create_subprocess_exec(
            *self.prefix, *self.args, stdin=asyncio.subprocess.DEVNULL, stdout=self._log,
            stderr=asyncio.subprocess.STDOUT, env=self.env)
        return self

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    async def wait(self, timeout: float) -> int:
        """Its exit status, once it has exited by itself within `timeout` seconds."""
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"whip-client still runs after {timeout} s:\n"
                                 f"{self.output()[-3000:]}") from None

    def interrupt(self) -> None:
        """Ctrl-C: whip-client sends DELETE to its session URL, then exits."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)

    async def stop(self, grace: float = 5.0) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.interrupt()
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
