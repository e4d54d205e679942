"""`python -m hubbub.apps.spaces --hubbub-url ... --api-secret ...` (same as `hubbub spaces`)."""

from __future__ import annotations

import argparse

from hubbub.apps.spaces.cli import add_spaces_arguments, run_standalone


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hubbub.apps.spaces",
        description="Spaces audio rooms, served against a remote hubbub node",
    )
    add_spaces_arguments(parser)
    return run_standalone(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
