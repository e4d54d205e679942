"""deploy/Dockerfile read with Docker's own parser (the `dockerfile` package)."""

from __future__ import annotations

from pathlib import Path

import dockerfile

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"


def stages() -> list[list[dockerfile.Command]]:
    """The commands of each FROM stage, in order."""
    found: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            found.append([])
        if found:
            found[-1].append(command)
    return found


def runtime_env() -> dict[str, str]:
    """The ENV of the last (runtime) stage."""
    env: dict[str, str] = {}
    for command in stages()[-1]:
        if command.cmd == "ENV":
            env.update(zip(command.value[::2], command.value[1::2], strict=True))
    return env


def runtime_command() -> list[str]:
    """ENTRYPOINT + CMD of the runtime stage (exec form)."""
    commands = {c.cmd: c for c in stages()[-1]}
    return [*commands["ENTRYPOINT"].value, *commands["CMD"].value]


def healthcheck() -> list[str]:
    """The HEALTHCHECK's command (exec form, after CMD)."""
    check = next(c for c in stages()[-1] if c.cmd == "HEALTHCHECK")
    assert check.value[0] == "CMD", check.value
    return list(check.value[1:])
