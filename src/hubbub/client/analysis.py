"""Tone analysis of received audio: which frequency dominates, how loud, is a tone there."""

from __future__ import annotations

import numpy as np


def rms(samples: np.ndarray) -> float:
    """Root mean square of the samples (0.0 for none)."""
    if samples.size == 0:
        return 0.0
    data = samples.astype(np.float64)
    return float(np.sqrt(np.mean(data * data)))


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    """Frequency in Hz of the strongest spectral peak (0.0 for silence or no samples).

    Hann window, real FFT, then a parabola through the log magnitudes of the peak bin and its
    neighbours: for a Hann-windowed sine that lands within a few hundredths of a bin.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if samples.ndim != 1:
        raise ValueError(f"samples must be one-dimensional, got shape {samples.shape}")
    n = samples.size
    if n < 4:
        return 0.0
    data = samples.astype(np.float64)
    data = data - data.mean()
    spectrum = np.abs(np.fft.rfft(data * np.hanning(n)))
    spectrum[0] = 0.0  # DC is not a tone
    peak = int(np.argmax(spectrum))
    if spectrum[peak] <= 1e-12 * n:
        return 0.0
    offset = 0.0
    if 0 < peak < len(spectrum) - 1:
        left, centre, right = np.log(spectrum[peak - 1: peak + 2] + 1e-300)
        denominator = left - 2 * centre + right
        if denominator < 0:
            offset = 0.5 * (left - right) / denominator
    return float((peak + offset) * sample_rate / n)


def tone_present(
    samples: np.ndarray,
    freq: float,
    sample_rate: int,
    tolerance_hz: float = 10,
    min_rms: float = 0.01,
) -> bool:
    """True when the samples are not silent (``rms >= min_rms``, in the samples' own scale;
    0.01 is -40 dBFS for floats in [-1, 1]) and their dominant frequency is within
    ``tolerance_hz`` of ``freq``."""
    if rms(samples) < min_rms:
        return False
    return abs(dominant_frequency(samples, sample_rate) - freq) <= tolerance_hz
