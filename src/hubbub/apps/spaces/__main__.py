"""`python -m hubbub.apps.spaces --hubbub-url ... --api-secret ...` (same as `hubbub spaces`)."""

from __future__ import annotations

import argparse
import sys

from hubbub.apps.spaces.cli import add_spaces_command


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m hubbub.apps.spaces")
    sub = parser.add_subparsers(dest="command")
    add_spaces_command(sub)
    args = parser.parse_args(["spaces", *sys.argv[1:]])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
