"""Which publisher's tone a viewer's track carries (the multiplexing tests)."""

from __future__ import annotations

from collections.abc import Mapping

from hubbub.client.analysis import dominant_frequency, rms
from hubbub.client.media import AudioRecorder


def which_tone(
    recorder: AudioRecorder, tones: Mapping[str, float], window: float = 0.8
) -> str | None:
    """The name in `tones` whose frequency the last `window` seconds carry; "" for silence,
    None for no audio. A frequency no publisher sends fails the test."""
    samples = recorder.samples(window)
    if recorder.sample_rate == 0 or len(samples) < window * recorder.sample_rate * 0.9:
        return None
    if rms(samples) < 0.01:
        return ""
    freq = dominant_frequency(samples, recorder.sample_rate)
    for name, tone in tones.items():
        if abs(freq - tone) < 10:
            return name
    raise AssertionError(f"heard {freq:.1f} Hz, which no publisher sends")
