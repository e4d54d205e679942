from typing import Any

def protect_and_send(
    fd: int, protect_fn: int, items: list[tuple[int, bytes, bytes, Any, tuple[str, int]]]
) -> tuple[int, int, list[tuple[bytes, int]]]: ...
