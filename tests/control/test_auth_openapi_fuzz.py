"""Property-based run of the OpenAPI document (schemathesis): no input makes the API fail 5xx
(the token API, the Director, WHIP and WHEP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi

from hubbub.config import Config
from hubbub.control.app import create_app
from hubbub.control.node import Node

ADMIN = "admin-secret-for-fuzzing-0123456789"


@schemathesis.serializer("application/sdp")
def sdp_body(ctx: object, value: object) -> bytes:
    """WHIP/WHEP offers (the schema says: a string): sent as they are generated."""
    return value.encode(errors="surrogatepass") if isinstance(value, str) else bytes(
        str(value), "utf-8")


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    config = Config()
    config.media.host = "127.0.0.1"
    config.media.port = 0
    config.auth.data_dir = str(Path(tmp_path_factory.mktemp("fuzz")) / "data")
    config.auth.api_secret = ADMIN
    config.auth.open_viewing = ["open*"]
    app = create_app(Node(config))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    schemathesis_asgi.shutdown_lifespans()  # stops the node and closes the token store


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture],
)
def test_no_input_makes_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {ADMIN}"})
    case.validate_response(response, checks=[not_a_server_error])
    # Every reply, success or not, has the Millicast envelope.
    content_type = response.headers.get("content-type", [""])[0]
    if content_type.startswith("application/json"):
        body = response.json()
        if "keys" not in body:  # the JWK set is plain RFC 7517
            assert body["status"] in ("success", "fail"), body
