"""Spoken prompts on disk: make the files under Asterisk's sounds directory equal the prompts a
tenant needs (see :mod:`.sounds` for what and where, :mod:`.tts` for how they are spoken).

A prompt is spoken only when its file is missing or was made from other text, voice or engine;
a tenant's prompts that its configuration no longer has (a deleted menu, a closed message taken
away) are removed after an apply Asterisk accepted, and all of them when the tenant is removed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .files import atomic_write
from .sounds import Prompt, tenant_prompt_prefix
from .tts import Engine, wav_bytes, wav_identity

log = logging.getLogger(__name__)
EXTENSION = ".wav"


@dataclass
class PromptSync:
    spoken: list[str] = field(default_factory=list)  # sound names written (new or changed text)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)


def prompt_file(sounds_dir: Path, sound: str) -> Path:
    return sounds_dir / f"{sound}{EXTENSION}"


async def write_prompts(engine: Engine, sounds_dir: Path, prompts: Iterable[Prompt]) -> PromptSync:
    """Speak every prompt whose file is missing or stale; atomically, so Asterisk never plays half
    a file."""
    result = PromptSync()
    for prompt in prompts:
        path = prompt_file(sounds_dir, prompt.path)
        identity = engine.identity(prompt.text, prompt.language)
        if wav_identity(path) == identity:
            result.unchanged += 1
            continue
        pcm = await engine.speak(prompt.text, prompt.language)
        atomic_write(path, wav_bytes(pcm, identity))
        result.spoken.append(prompt.path)
    if result.spoken:
        log.info("spoke %d prompt(s) into %s: %s", len(result.spoken), sounds_dir, ", ".join(result.spoken))
    return result


def remove_stale_prompts(sounds_dir: Path, slug: str, keep: Iterable[str] = ()) -> list[str]:
    """Delete tenant ``slug``'s TTS prompt files that are not in ``keep`` (sound names)."""
    prefix = tenant_prompt_prefix(slug)
    directory = prompt_file(sounds_dir, prefix).parent
    wanted = set(keep)
    removed = []
    if not directory.is_dir():
        return removed
    for path in sorted(directory.glob(f"{Path(prefix).name}*{EXTENSION}")):
        sound = f"{Path(prefix).parent}/{path.name.removesuffix(EXTENSION)}"
        if sound not in wanted:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed.append(sound)
    if removed:
        log.info("removed %d prompt(s) of tenant %s: %s", len(removed), slug, ", ".join(removed))
    return removed
