"""The `layer` object of `select`, `view` and `project` entries (PROTOCOL.md)."""

from __future__ import annotations

import pytest

from hubbub.control.messages import ProtocolError
from hubbub.control.view import layer_request
from hubbub.sfu.layers import AUTOMATIC, LayerRequest


def test_encoding_id_pins_a_layer_and_empty_is_automatic() -> None:
    assert layer_request({"encodingId": "h"}) == LayerRequest("h")
    assert layer_request({"encodingId": 2, "temporalLayerId": 255}) == LayerRequest("2")
    assert layer_request({}) == AUTOMATIC
    assert layer_request(None) == AUTOMATIC


def test_temporal_layer_ids_cap_the_temporal_layers() -> None:
    assert layer_request({"temporalLayerId": 0}) == LayerRequest(None, 0)
    assert layer_request({"encodingId": "q", "maxTemporalLayerId": 1,
                          "temporalLayerId": 2}) == LayerRequest("q", 1)
    assert layer_request({"maxTemporalLayerId": 3}) == AUTOMATIC  # TID is two bits: all


@pytest.mark.parametrize(("layer", "reason"), [
    ([1], "layer must be an object"),
    ({"encodingId": True}, "encodingId must be a string"),
    ({"encodingId": ""}, "encodingId must be a string"),
    ({"encodingId": "x" * 33}, "encodingId must be a string"),
    ({"spatialLayerId": 256}, "spatialLayerId must be an integer 0-255"),
    ({"maxTemporalLayerId": "1"}, "maxTemporalLayerId must be an integer 0-255"),
])
def test_a_bad_layer_is_refused_with_the_reason(layer: object, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        layer_request(layer)
