from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.client.analysis import dominant_frequency, rms, tone_present

RATE = 48000


def sine(freq: float, seconds: float, rate: int = RATE, amplitude: float = 0.5,
         phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    result: np.ndarray = amplitude * np.sin(2 * np.pi * freq * t + phase)
    return result


@given(
    freq=st.floats(min_value=100, max_value=4000),
    phase=st.floats(min_value=0, max_value=6.28),
    seconds=st.sampled_from([0.1, 0.25, 0.5]),
)
@settings(max_examples=60, deadline=None)
def test_dominant_frequency_of_a_sine_is_exact_within_1_hz(
    freq: float, phase: float, seconds: float
) -> None:
    assert abs(dominant_frequency(sine(freq, seconds, phase=phase), RATE) - freq) < 1.0


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_dominant_frequency_at_other_rates(rate: int) -> None:
    assert abs(dominant_frequency(sine(1000.3, 0.2, rate), rate) - 1000.3) < 1.0


def test_dominant_frequency_in_noise() -> None:
    noisy = sine(660, 0.5) + np.random.default_rng(1).normal(0, 0.2, int(0.5 * RATE))
    assert abs(dominant_frequency(noisy, RATE) - 660) < 1.0


def test_dominant_frequency_picks_the_stronger_of_two_tones() -> None:
    mixed = sine(440, 0.5, amplitude=0.2) + sine(880, 0.5, amplitude=0.5)
    assert abs(dominant_frequency(mixed, RATE) - 880) < 1.0


def test_dominant_frequency_of_int16_samples() -> None:
    samples = np.round(sine(523.25, 0.2) * 32767).astype(np.int16)
    assert abs(dominant_frequency(samples, RATE) - 523.25) < 1.0


def test_silence_dc_and_tiny_inputs_have_no_dominant_frequency() -> None:
    assert dominant_frequency(np.zeros(4800), RATE) == 0.0
    assert dominant_frequency(np.full(4800, 0.7), RATE) == 0.0
    assert dominant_frequency(np.zeros(0), RATE) == 0.0
    assert dominant_frequency(np.ones(3), RATE) == 0.0


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="sample_rate must be positive, got 0"):
        dominant_frequency(sine(440, 0.1), 0)
    with pytest.raises(ValueError, match=r"one-dimensional, got shape \(2, 10\)"):
        dominant_frequency(np.zeros((2, 10)), RATE)


def test_rms() -> None:
    assert rms(np.zeros(0)) == 0.0
    assert rms(np.zeros(100)) == 0.0
    assert rms(np.full(10, -0.5)) == pytest.approx(0.5)
    assert rms(sine(440, 1.0, amplitude=1.0)) == pytest.approx(1 / np.sqrt(2), rel=1e-4)
    assert rms(np.array([3, 4], dtype=np.int16)) == pytest.approx(np.sqrt(12.5))


def test_tone_present() -> None:
    tone = sine(440, 0.3)
    assert tone_present(tone, 440, RATE)
    assert tone_present(tone, 447, RATE, tolerance_hz=10)
    assert not tone_present(tone, 460, RATE, tolerance_hz=10)
    assert not tone_present(tone, 880, RATE)
    assert not tone_present(np.zeros(4800), 440, RATE)
    quiet = sine(440, 0.3, amplitude=0.005)
    assert not tone_present(quiet, 440, RATE)
    assert tone_present(quiet, 440, RATE, min_rms=0.001)
    noise = np.random.default_rng(2).normal(0, 0.3, 14400)
    assert not tone_present(noise, 440, RATE, tolerance_hz=2)
