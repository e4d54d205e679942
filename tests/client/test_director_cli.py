"""`hubbub publish/view --director URL --token T`: the CLI trades a long-lived token for a JWT."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hubbub.client import commands, director
from tests.helpers.server import RunningServer

ADMIN = "cli-admin-secret-0123456789abcdef0123"


def make_token(data_dir: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "hubbub", "token", "create", *args, "--data-dir", str(data_dir),
         "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return str(json.loads(out)["token"])


async def test_cli_publishes_and_views_through_the_director(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = RunningServer(name="cli-director", allow_any_stream=False,
                           extra_args=["--data-dir", str(data), "--api-secret", ADMIN])
    async with server as srv:
        pub_token = make_token(data, "--publish", "--stream", "cli*")
        sub_token = make_token(data, "--subscribe", "--stream", "cli*")
        pub_parser, view_parser = argparse.ArgumentParser(), argparse.ArgumentParser()
        commands.add_publish_arguments(pub_parser)
        commands.add_view_arguments(view_parser)
        pub_args = pub_parser.parse_args(
            ["--stream", "cli1", "--director", srv.http_url, "--token", pub_token,
             "--tone", "660", "--duration", "8"])
        view_args = view_parser.parse_args(
            ["--stream", "cli1", "--director", srv.http_url, "--token", sub_token,
             "--no-video", "--duration", "4"])
        pub_out, view_out = io.StringIO(), io.StringIO()
        publishing = asyncio.create_task(commands.publish(pub_args, pub_out))
        await asyncio.sleep(2.5)
        assert await commands.view(view_args, view_out) == 0
        publishing.cancel()
        lines = [json.loads(x) for x in view_out.getvalue().splitlines()]
        assert lines[0]["director"]["url"].endswith("/ws/v2/sub")
        heard = [m["received"] for m in lines if "received" in m]
        freqs = [r[mid]["frequency"] for r in heard for mid in r if "frequency" in r[mid]]
        assert freqs and abs(freqs[-1] - 660) < 5, lines


async def test_director_refusal_is_reported(tmp_path: Path) -> None:
    async with RunningServer(name="cli-director-refused", allow_any_stream=False,
                             extra_args=["--data-dir", str(tmp_path / "d")]) as srv:
        with pytest.raises(director.DirectorError) as info:
            await director.connect_info(srv.http_url, "publish", "x", "not-a-token")
        assert info.value.status == 401
