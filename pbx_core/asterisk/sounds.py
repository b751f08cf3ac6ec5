"""Which sound files the rendered dialplan plays, and the ones pbx-core makes itself (pure).

Asterisk looks a sound up as ``{language}/{name}``, then ``{name}``, then ``en/{name}``
(main/file.c ``fileexists_core``), below its sounds directory. What is where:

* English core prompts (``queue-holdtime``, ``pm-invalid-option``, ``digits/5``, ...) come from
  Debian's ``asterisk-core-sounds-en-gsm`` (tests/fixtures/sounds/ lists its files).
* There is no Dutch core sounds package (not in Debian, not from Asterisk), so pbx-core speaks
  the Dutch version of every core prompt the call path plays into ``nl/{name}``
  (:data:`DUTCH_CORE`), including the digits and number words SayNumber/SayDigits and app_queue's
  position announcements use for ``nl`` (main/say.c ``ast_say_number_full_nl``).
* pbx-core's own prompts (``pbx-core/callback-*``) are spoken in both languages into
  ``{language}/pbx-core/`` (:data:`OWN`): a callback's agent leg is a Local channel without the
  tenant's language, so English is always needed too.
* A tenant's TTS prompts (menus, closed messages) are spoken in the tenant's language into
  ``tts/{slug}-{owner}`` (no language directory: any channel finds them).

Staff-only prompts of VoiceMailMain (``vm-*`` when an agent checks their own mailbox) stay
English for Dutch tenants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import dialplan

LANGUAGES = ("nl", "en")


@dataclass(frozen=True, order=True)
class Prompt:
    """One sound file pbx-core makes: ``path`` below Asterisk's sounds directory, without the
    extension (``tts/acme-main``, ``nl/queue-holdtime``), spoken from ``text`` in ``language``."""

    path: str
    text: str
    language: str


# pbx-core's own prompts, by sound name as the dialplan plays it.
OWN: dict[str, dict[str, str]] = {
    dialplan.SOUND_OFFER: {
        "en": "Press 1 to be called back. You keep your place in line.",
        "nl": "Toets 1 om teruggebeld te worden. U houdt uw plaats in de wachtrij.",
    },
    dialplan.SOUND_UNAVAILABLE: {
        "en": "A callback is not possible right now.",
        "nl": "Terugbellen is op dit moment niet mogelijk.",
    },
    dialplan.SOUND_NUMBER: {
        "en": "We will call you back on",
        "nl": "Wij bellen u terug op nummer",
    },
    dialplan.SOUND_CONFIRM: {
        "en": "Press 1 to confirm, or 2 to enter another number.",
        "nl": "Toets 1 om te bevestigen, of 2 om een ander nummer in te toetsen.",
    },
    dialplan.SOUND_ENTER: {
        "en": "Enter the number we should call you back on, followed by the hash key.",
        "nl": "Toets het nummer waarop wij u terug kunnen bellen, gevolgd door een hekje.",
    },
    dialplan.SOUND_BOOKED: {
        "en": "Thank you. We will call you back. Goodbye.",
        "nl": "Dank u wel. Wij bellen u terug. Tot ziens.",
    },
    dialplan.SOUND_FAILED: {
        "en": "Sorry, we could not book the callback.",
        "nl": "Helaas konden wij het terugbelverzoek niet vastleggen.",
    },
    dialplan.SOUND_ANNOUNCE: {
        "en": "Callback. Calling the customer on",
        "nl": "Terugbelverzoek. De klant wordt gebeld op nummer",
    },
}

# Core prompts the call path plays (dialplan, app_queue announcements, a caller's VoiceMail), in
# Dutch. The English originals are in asterisk-core-sounds-en-gsm.
_DUTCH_WORDS = {
    "pm-invalid-option": "Die keuze is ongeldig. Probeer het opnieuw.",
    "ss-noservice": "Het gekozen nummer is niet in gebruik. Controleer het nummer en probeer het opnieuw.",
    "queue-holdtime": "De verwachte wachttijd is op dit moment",
    "queue-minute": "minuut",
    "queue-minutes": "minuten",
    "queue-youarenext": "U bent nu als eerste aan de beurt en wordt zo snel mogelijk geholpen.",
    "queue-thereare": "U bent nu beller nummer",
    "queue-callswaiting": "in de wachtrij.",
    "queue-thankyou": "Dank u voor uw geduld.",
    "vm-theperson": "De persoon op toestel",
    "vm-isunavail": "is niet bereikbaar.",
    "vm-isonphone": "is in gesprek.",
    "vm-intro": "Spreek uw bericht in na de toon. Hang op of druk op hekje als u klaar bent.",
    "vm-goodbye": "Tot ziens.",
}
_DUTCH_NUMBERS = {
    0: "nul", 1: "één", 2: "twee", 3: "drie", 4: "vier", 5: "vijf", 6: "zes", 7: "zeven", 8: "acht",
    9: "negen", 10: "tien", 11: "elf", 12: "twaalf", 13: "dertien", 14: "veertien", 15: "vijftien",
    16: "zestien", 17: "zeventien", 18: "achttien", 19: "negentien", 20: "twintig", 30: "dertig",
    40: "veertig", 50: "vijftig", 60: "zestig", 70: "zeventig", 80: "tachtig", 90: "negentig",
}
DUTCH_CORE: dict[str, str] = {
    **_DUTCH_WORDS,
    **{f"digits/{n}": word for n, word in _DUTCH_NUMBERS.items()},
    "digits/nl-en": "en",  # "vijf-en-twintig": say.c plays units, "en", tens
    "digits/hundred": "honderd",
    "digits/thousand": "duizend",
}

# Sounds Asterisk applications play by themselves for what the dialplan asks of them, beyond the
# files it names: app_queue's position announcement (announce-position=yes) and VoiceMail's
# greeting for a mailbox without a recorded one (option u or b), then its tone.
QUEUE_POSITION_SOUNDS = ("queue-youarenext", "queue-thereare", "queue-callswaiting", "queue-thankyou")
VOICEMAIL_GREETING_SOUNDS = ("vm-theperson", "vm-isunavail", "vm-isonphone", "vm-intro", "beep")


def fixed_prompts() -> list[Prompt]:
    """Every prompt pbx-core speaks whatever the tenants: its own in nl and en, and the Dutch core."""
    own = [Prompt(f"{lang}/{name}", texts[lang], lang) for name, texts in OWN.items() for lang in LANGUAGES]
    dutch = [Prompt(f"nl/{name}", text, "nl") for name, text in DUTCH_CORE.items()]
    return sorted(own + dutch)


def tenant_prompts(config: Any) -> list[Prompt]:
    """The tenant's TTS prompts (a schemas.TenantConfig): menu prompts and closed messages, with
    the sound names the dialplan plays (:func:`pbx_core.asterisk.dialplan.prompt_sound`)."""
    slug, language = config.slug, config.language
    out = []
    for menu in config.menus:
        if menu.prompt.kind == "tts":
            sound = dialplan.prompt_sound(slug, menu.prompt, menu.name, "menu")
            out.append(Prompt(sound, menu.prompt.text, language))
    for hours in config.hours:
        message = hours.closed_message
        if message is not None and message.kind == "tts":
            sound = dialplan.prompt_sound(slug, message, f"hours-{hours.name}", "hours")
            out.append(Prompt(sound, message.text, language))
    return sorted(out)


def tenant_prompt_prefix(slug: str) -> str:
    """Every TTS prompt of tenant ``slug`` starts with this (slugs hold no hyphen)."""
    return f"tts/{slug}-"


def say_number_sounds(number: int, language: str) -> list[str]:
    """The files SayNumber plays for ``number`` (0..999 999) in ``language``, as main/say.c picks
    them (``ast_say_number_full_nl`` / ``_en``)."""
    if number == 0:
        return ["digits/0"]
    if language == "nl":
        return _say_nl(number)
    return _say_en(number)


def _say_nl(n: int) -> list[str]:
    if n < 20:
        return [f"digits/{n}"]
    if n < 100:
        units = n % 10
        return [f"digits/{n}"] if not units else [*_say_nl(units), "digits/nl-en", f"digits/{n - units}"]
    if n < 1000:
        head = ["digits/hundred"] if n < 200 else [f"digits/{n // 100}", "digits/hundred"]
        return head + (_say_nl(n % 100) if n % 100 else [])
    if n < 1100:
        return ["digits/thousand", *(_say_nl(n % 1000) if n % 1000 else [])]
    if n < 10000:
        return [*_say_nl(n // 100), "digits/hundred", *(_say_nl(n % 100) if n % 100 else [])]
    return [*_say_nl(n // 1000), "digits/thousand", *(_say_nl(n % 1000) if n % 1000 else [])]


def _say_en(n: int) -> list[str]:
    out: list[str] = []
    if n >= 1000:
        out += [*_say_en(n // 1000), "digits/thousand"]
        n %= 1000
    if n >= 100:
        out += [f"digits/{n // 100}", "digits/hundred"]
        n %= 100
    if n >= 20:
        out.append(f"digits/{n - n % 10}")
        n %= 10
    if n:
        out.append(f"digits/{n}")
    return out


def digit_sounds() -> list[str]:
    """SayDigits of a phone number (digits only: the dialplan filters to 0-9 first)."""
    return [f"digits/{d}" for d in range(10)]


def paths(prompts: Iterable[Prompt]) -> set[str]:
    return {p.path for p in prompts}
