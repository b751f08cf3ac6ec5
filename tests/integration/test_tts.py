"""Spoken prompts with the real engine (espeak-ng + sox, Debian packages that `dev.py test`
installs): a Dutch prompt is real telephone audio Asterisk plays, and an apply speaks what the
tenant's menus need, again only when the text changes, and removes it with the menu."""

from __future__ import annotations

import array
import asyncio
import math
import shutil
from pathlib import Path

import pytest

from pbx_core.asterisk.prompts import prompt_file
from pbx_core.asterisk.sounds import fixed_prompts
from pbx_core.asterisk.tenant_apply import apply_tenant_with_members, remove_tenant_with_prompts
from pbx_core.asterisk.tts import Engine, find_engine, wav_bytes, wav_identity, wav_info
from pbx_core.provisioning.schemas import MenuCreate, Prompt, TenantConfig

pytestmark = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")),
    reason="text-to-speech needs espeak-ng and sox (apt-get install espeak-ng sox; `python3 dev.py test` "
    "installs them where it runs as root)",
)

DUTCH = "Welkom bij Acme. Voor support, toets 1. Voor verkoop, toets 2."


@pytest.fixture
async def engine() -> Engine:
    return await find_engine()


def rms(pcm: bytes) -> float:
    samples = array.array("h", pcm)
    return math.sqrt(sum(s * s for s in samples) / len(samples))


async def test_a_dutch_prompt_is_telephone_audio_of_plausible_length(engine: Engine, tmp_path: Path) -> None:
    pcm = await engine.speak(DUTCH, "nl")
    data = wav_bytes(pcm, engine.identity(DUTCH, "nl"))

    info = wav_info(data)
    assert (info.sample_rate, info.channels, info.bits) == (8000, 1, 16)  # what format_wav plays
    # ~11 words at 150 words a minute: a few seconds, not a click and not a minute of noise.
    assert 2.5 < info.seconds < 12, info.seconds
    assert rms(pcm) > 1000  # normalised speech, not silence
    quiet = sum(1 for i in range(0, len(pcm) // 2, 400) if rms(pcm[i * 2 : i * 2 + 800]) < 100)
    assert 0 < quiet < len(pcm) // 800  # pauses between words, but not all pause
    # An independent reader (sox) agrees with the header, LIST chunk and all.
    path = tmp_path / "welkom.wav"
    path.write_bytes(data)
    sox = await asyncio.create_subprocess_exec("sox", "--i", str(path), stdout=asyncio.subprocess.PIPE)
    soxi = (await sox.communicate())[0].decode()
    assert sox.returncode == 0
    assert "Sample Rate    : 8000" in soxi and "Channels       : 1" in soxi
    assert wav_identity(path) == engine.identity(DUTCH, "nl")


async def test_the_languages_sound_different_and_unknown_ones_are_refused(engine: Engine) -> None:
    dutch, english = await engine.speak("Goedemorgen", "nl"), await engine.speak("Goedemorgen", "en")
    assert dutch != english
    with pytest.raises(Exception, match="no voice for language 'fr'"):
        await engine.speak("Bonjour", "fr")


def tenant(text: str | None, slug: str = "acme") -> TenantConfig:
    menus = () if text is None else (MenuCreate(name="main", prompt=Prompt(kind="tts", text=text)),)
    return TenantConfig(slug=slug, name="Acme", language="nl", menus=menus)


async def test_apply_speaks_changed_text_only_and_removes_prompts_with_the_menu(tmp_path: Path) -> None:
    config_dir, sounds_dir = tmp_path / "pbx-core", tmp_path / "sounds"
    main = prompt_file(sounds_dir, "tts/acme-main")

    first = await apply_tenant_with_members(None, config_dir, tenant(DUTCH), sounds_dir=sounds_dir)
    assert first.files.status == "written" and first.prompts is not None
    assert "tts/acme-main" in first.prompts.spoken
    assert wav_info(main.read_bytes()).seconds > 2.5
    for fixed in ("nl/pbx-core/callback-offer", "en/pbx-core/callback-offer", "nl/pm-invalid-option",
                  "nl/digits/5", "nl/queue-holdtime"):
        assert wav_info(prompt_file(sounds_dir, fixed).read_bytes()).sample_rate == 8000, fixed
    assert len(first.prompts.spoken) == len(fixed_prompts()) + 1

    again = await apply_tenant_with_members(None, config_dir, tenant(DUTCH), sounds_dir=sounds_dir)
    assert again.prompts is not None and again.prompts.spoken == []  # nothing changed: nothing spoken

    before = main.read_bytes()
    shorter = tenant("Welkom bij Acme.")
    changed = await apply_tenant_with_members(None, config_dir, shorter, sounds_dir=sounds_dir)
    assert changed.prompts is not None and changed.prompts.spoken == ["tts/acme-main"]
    assert main.read_bytes() != before and wav_info(main.read_bytes()).seconds < wav_info(before).seconds

    other = await apply_tenant_with_members(None, config_dir, tenant(DUTCH, "acme2"), sounds_dir=sounds_dir)
    assert other.prompts is not None and other.prompts.spoken == ["tts/acme2-main"]
    gone = await apply_tenant_with_members(None, config_dir, tenant(None), sounds_dir=sounds_dir)
    assert gone.prompts is not None and gone.prompts.removed == ["tts/acme-main"]
    assert not main.exists()
    assert prompt_file(sounds_dir, "tts/acme2-main").exists()  # another tenant's "acme2-" is not "acme-"

    removed = await remove_tenant_with_prompts(None, config_dir, "acme2", sounds_dir=sounds_dir)
    assert removed.ok
    assert not prompt_file(sounds_dir, "tts/acme2-main").exists()
    assert prompt_file(sounds_dir, "nl/pbx-core/callback-offer").exists()  # shared prompts stay


async def test_without_a_sounds_directory_the_apply_says_the_menus_are_silent(tmp_path: Path) -> None:
    applied = await apply_tenant_with_members(None, tmp_path / "pbx-core", tenant(DUTCH))
    assert applied.prompts is None
    assert applied.files.note is not None and "PBX_ASTERISK_SOUNDS_DIR" in applied.files.note


async def test_a_sounds_directory_without_the_engine_fails_the_apply_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    applied = await apply_tenant_with_members(None, tmp_path / "pbx-core", tenant(DUTCH),
                                              sounds_dir=tmp_path / "sounds")
    assert applied.files.status == "failed"
    assert "espeak-ng and sox not found" in (applied.files.error or "")
    assert "apt-get install espeak-ng sox" in (applied.files.error or "")
    assert not (tmp_path / "pbx-core").exists()
