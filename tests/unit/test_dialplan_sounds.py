"""Every sound the rendered dialplan can play exists: in the core sounds package the Asterisk image
installs (its file list is in tests/fixtures/sounds/), or among the prompts pbx-core speaks itself
(pbx_core/asterisk/sounds.py), in English and in Dutch.

The dialplan is read the way Asterisk runs it: each application that plays something is known
here and its sound arguments are taken apart (``&`` lists, ``${IF(...?a:b)}`` alternatives);
an application this test does not know fails it, so a new ``Playback`` cannot slip by unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_core.asterisk import sounds
from pbx_core.asterisk.files import parse_text
from pbx_core.asterisk.render import render_tenant
from pbx_core.provisioning.schemas import TenantConfig
from tests.conftest import ROOT
from tests.unit.test_render import acme_config

FIXTURES = ROOT / "tests" / "fixtures" / "sounds"
CORE_EN = FIXTURES / "asterisk-core-sounds-en-gsm.txt"
MOH = FIXTURES / "asterisk-moh-opsound-gsm.txt"
EN_DIR = "sounds/en_US_f_Allison/"

# Applications of the rendered dialplan that play nothing themselves.
SILENT = {"Set", "Goto", "GotoIf", "GotoIfTime", "Gosub", "Return", "Answer", "Hangup", "Dial",
          "WaitExten", "ExecIf", "NoOp", "UserEvent"}
# Tones: the same in every language, so a Dutch channel may play the English file.
TONES = {"beep"}
# VoiceMailMain is where staff check their own mailbox: its many vm-* prompts stay English for a
# Dutch tenant (README: Sounds). Callers never reach it.
STAFF_ONLY = {"VoiceMailMain"}
# SayNumber in the dialplan says the expected wait in whole minutes; max_wait_s is at most 7200.
MINUTES = range(1, 121)
# app_queue says a caller's position; more than 99 waiting callers is beyond any SMB queue.
POSITIONS = range(1, 100)


def package_sounds(listing: Path, prefix: str) -> set[str]:
    lines = [line for line in listing.read_text().splitlines() if line and not line.startswith("#")]
    return {line.removeprefix(prefix).rsplit(".", 1)[0] for line in lines if line.startswith(prefix)}


def core_en() -> set[str]:
    return {f"en/{name}" for name in package_sounds(CORE_EN, EN_DIR)}


def split_args(args: str) -> list[str]:
    """Split on the commas Asterisk splits on: not inside ``(...)``, ``[...]`` or ``${...}``."""
    out, depth, current = [], 0, ""
    for ch in args:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    return [*out, current]


IF_CHOICE = re.compile(r"^\$\{IF\(\$\[[^?]*\]\?([^:()]+):([^:()]+)\)\}$")


def sound_names(arg: str) -> list[str]:
    names = []
    for part in arg.split("&"):
        choice = IF_CHOICE.match(part)
        names += [choice.group(1), choice.group(2)] if choice else [part]
    for name in names:
        assert "$" not in name and name, f"cannot tell which sound {arg!r} plays"
    return names


STEP = re.compile(r"^(?:exten\s*=>\s*[^,]+,[^,]+|same\s*=>\s*[^,]+),(\w+)\((.*)\)$")


def dialplan_plays(
    extensions_conf: str, queues: dict[str, dict[str, str]], language: str
) -> Iterator[tuple[str, str]]:
    """(sound, where) for every sound the dialplan can play on a channel of ``language``."""
    for n, line in enumerate(extensions_conf.splitlines(), 1):
        step = STEP.match(line.strip())
        if not step or ",hint," in line:
            continue
        app, args = step.group(1), split_args(step.group(2))
        where = f"line {n}: {app}"
        if app in ("Playback", "Background"):
            yield from ((s, where) for s in sound_names(args[0]))
        elif app == "Read":
            yield from ((s, where) for s in sound_names(args[1]))
        elif app == "SayDigits":
            yield from ((s, where) for s in sounds.digit_sounds())
        elif app == "SayNumber":
            assert args[0] == "$[CEIL(${PBX_EWT}/60)]", f"{where}: a new SayNumber; say what it can say"
            yield from ((s, f"{where} {m}") for m in MINUTES for s in sounds.say_number_sounds(m, language))
        elif app == "VoiceMail":
            yield from ((s, where) for s in (*sounds.VOICEMAIL_GREETING_SOUNDS, *sounds.digit_sounds()))
        elif app == "Queue":
            queue = queues[args[0]]
            if "periodic-announce" in queue:
                yield from ((s, f"{where} periodic-announce") for s in queue["periodic-announce"].split(","))
            if queue.get("announce-position") == "yes":
                yield from ((s, f"{where} position") for s in sounds.QUEUE_POSITION_SOUNDS)
                yield from ((s, f"{where} position {p}") for p in POSITIONS
                            for s in sounds.say_number_sounds(p, language))
        elif app in STAFF_ONLY:
            continue
        else:
            assert app in SILENT, f"{where}: does {app}() play a sound? Teach this test."


def resolvable(sound: str, language: str, available: set[str]) -> bool:
    """Asterisk's lookup (main/file.c): ``{lang}/x``, then ``x``, then ``en/x``. A Dutch caller
    must not get the English fallback, except for tones."""
    candidates = [f"{language}/{sound}", sound]
    if language == "en" or sound in TONES:
        candidates.append(f"en/{sound}")
    return any(c in available for c in candidates)


def plays(config: TenantConfig) -> list[tuple[str, str]]:
    files = render_tenant(config)
    queues = {s.name: dict(s.items) for s in parse_text(files[f"{config.slug}/queues.conf"].decode())}
    language = config.language
    tenant = list(dialplan_plays(files[f"{config.slug}/extensions.conf"].decode(), queues, language))
    base = list(dialplan_plays((ROOT / "asterisk-config" / "extensions.conf").read_text(), {}, language))
    return tenant + base


def missing(config: TenantConfig, language: str) -> list[str]:
    recordings = {m.prompt.recording for m in config.menus if m.prompt.kind == "recording"}
    available = core_en() | sounds.paths(sounds.fixed_prompts()) | sounds.paths(sounds.tenant_prompts(config))
    out = []
    for sound, where in plays(config):
        if sound in recordings:
            continue  # the tenant's own upload
        if not resolvable(sound, language, available):
            out.append(f"{sound} ({where})")
    return sorted(set(out))


@pytest.mark.parametrize("language", ["nl", "en"])
def test_every_sound_the_dialplan_can_play_exists(language: str) -> None:
    config = acme_config().model_copy(update={"language": language})
    found = plays(config)
    assert len({s for s, _ in found}) > 40  # the extraction really found the dialplan's sounds
    assert missing(config, language) == []


def test_the_extraction_finds_what_is_missing() -> None:
    """The check above can fail: a sound nobody ships is reported with where it is played."""
    files = render_tenant(acme_config())
    ext = files["acme/extensions.conf"].decode()
    ext = ext.replace("Playback(queue-holdtime)", "Playback(no-such-sound)")
    queues = {s.name: dict(s.items) for s in parse_text(files["acme/queues.conf"].decode())}
    available = core_en() | sounds.paths(sounds.fixed_prompts())
    lost = [s for s, _ in dialplan_plays(ext, queues, "en") if not resolvable(s, "en", available)]
    assert "no-such-sound" in lost
    assert not resolvable("option-is-invalid", "en", available)  # the prompt issue 10 found missing


def test_music_on_hold_files_are_in_the_package_the_image_installs() -> None:
    moh = package_sounds(MOH, "moh/")
    conf = (ROOT / "asterisk-config" / "musiconhold.conf").read_text()
    assert "directory=moh" in conf.replace(" ", "")
    assert len(moh) >= 5


def test_say_number_picks_the_files_asterisk_does() -> None:
    assert sounds.say_number_sounds(25, "nl") == ["digits/5", "digits/nl-en", "digits/20"]
    assert sounds.say_number_sounds(120, "nl") == ["digits/hundred", "digits/20"]
    assert sounds.say_number_sounds(345, "nl") == ["digits/3", "digits/hundred", "digits/5", "digits/nl-en",
                                                   "digits/40"]
    assert sounds.say_number_sounds(25, "en") == ["digits/20", "digits/5"]
    assert sounds.say_number_sounds(120, "en") == ["digits/1", "digits/hundred", "digits/20"]
