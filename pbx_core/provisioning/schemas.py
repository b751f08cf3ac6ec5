"""The validated shapes of everything a reseller provisions.

These pydantic models are the contract of the REST API (request and response bodies, and so the
OpenAPI document) and the input of the Asterisk renderer (:class:`TenantConfig`). Every field
that can reach an Asterisk config file or dialplan is constrained here to a strict pattern; the
renderer checks again (defence in depth), so a value that bypassed the API still cannot inject.

Naming: ``*In`` is what a client sends (create or replace), ``*Out`` what it gets back.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ..domain.tenants import RESERVED_SLUGS

# --- scalar types -------------------------------------------------------------------------------
# Patterns are anchored by pydantic (fullmatch semantics via ^...$ below).

SLUG_PATTERN = r"^[a-z][a-z0-9]{0,15}$"
# Short names of queues, menus, schedules: the part after "{slug}-" in Asterisk. Lower-case so
# they are also clean URL path segments.
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
EXTENSION_PATTERN = r"^[1-9][0-9]{1,5}$"
# E.164-ish: optional +, 3-15 digits. Used for DIDs, mobiles and external destinations.
NUMBER_PATTERN = r"^\+?[0-9]{3,15}$"
# A sound file name under Asterisk's sounds directory, without extension or "..".
RECORDING_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}(/[a-z0-9][a-z0-9_-]{0,47}){0,2}$"
DIGIT_PATTERN = r"^[0-9*#]$"
EMAIL_PATTERN = r"^[^@\s;,<>\"'()\[\]\\]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$"
HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"

# No text anywhere may hold these: C0 and C1 control characters and DEL (a newline is how config
# injection starts; PostgreSQL refuses NUL with an error), lone surrogates (not encodable as
# UTF-8: the database driver fails on them) and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def control_character(value: object) -> str | None:
    """The first forbidden character in ``value`` (a string, or the strings inside a list, tuple
    or dict, keys included), else None. Nested models checked their own fields already."""
    if isinstance(value, str):
        found = _CONTROL.search(value)
        return found.group() if found else None
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            found_in = control_character(item)
            if found_in is not None:
                return found_in
    return None


def _control_message(char: str) -> str:
    return f"must not contain control characters (found U+{ord(char):04X})"


def _printable(value: str) -> str:
    """Free text (display names, prompts' text) may hold any printable character, no control
    character and no edge whitespace. (:class:`Model` refuses control characters in every field;
    this keeps ``Text`` whole where it is used on its own, e.g. the keys command's names.)"""
    found = control_character(value)
    if found is not None:
        raise ValueError(_control_message(found))
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (use an IANA name like Europe/Amsterdam)") from None
    return value


def _slug(value: str) -> str:
    if value in RESERVED_SLUGS:
        raise ValueError(f"{value!r} is reserved")
    return value


Slug = Annotated[str, Field(pattern=SLUG_PATTERN, examples=["acme"]), AfterValidator(_slug)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, examples=["support"])]
Extension = Annotated[str, Field(pattern=EXTENSION_PATTERN, examples=["201"])]
Number = Annotated[str, Field(pattern=NUMBER_PATTERN, examples=["+31201234567"])]
Recording = Annotated[str, Field(pattern=RECORDING_PATTERN, examples=["custom/acme-welcome"])]
Digit = Annotated[str, Field(pattern=DIGIT_PATTERN)]
Text = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_printable)]
LongText = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_printable)]
Email = Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=254, examples=["ann@example.com"])]
Timezone = Annotated[str, Field(examples=["Europe/Amsterdam"]), AfterValidator(_timezone)]
HHMM = Annotated[str, Field(pattern=HHMM_PATTERN, examples=["08:30"])]

Language = Literal["nl", "en"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Model(BaseModel):
    """The rules every shape shares, in one place rather than per field:

    - unknown fields are an error (a typo must not be silently ignored);
    - types are strict: ``0`` is not a boolean, ``5.0`` is not an integer, ``"3"`` is not a
      number (what the OpenAPI document says is what is accepted);
    - no text field, at any depth, holds a control character (see :func:`control_character`);
    - models are frozen, so a TenantConfig handed to the renderer cannot change under it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        found = control_character(value)
        if found is not None:
            raise ValueError(_control_message(found))
        return value


# --- destinations -------------------------------------------------------------------------------

DestinationType = Literal["extension", "queue", "menu", "hours", "voicemail", "external", "hangup",
                          "callback"]
_TARGET_PATTERN: dict[str, str | None] = {
    "extension": EXTENSION_PATTERN,
    "callback": NAME_PATTERN,
    "voicemail": EXTENSION_PATTERN,
    "queue": NAME_PATTERN,
    "menu": NAME_PATTERN,
    "hours": NAME_PATTERN,
    "external": NUMBER_PATTERN,
    "hangup": None,
}


class Destination(Model):
    """Where a call goes. ``target`` is an extension (``extension``, ``voicemail``), a short name
    (``queue``, ``menu``, ``hours`` = a business-hours schedule, ``callback`` = book a callback
    from that queue, e.g. after hours: the caller confirms the number and is called back once the
    queue's schedule opens), a number (``external``), or absent (``hangup``).

    Across objects: the target must exist in the same tenant (a user for ``extension`` and
    ``voicemail``, a queue for ``queue`` and ``callback``, a menu, a schedule) - else 422 naming
    the field; and an object a destination points at cannot be deleted while it does (409 naming
    who points at it)."""

    type: DestinationType
    target: str | None = Field(default=None, max_length=32, examples=["support"])

    @model_validator(mode="after")
    def _target_matches_type(self) -> Destination:
        pattern = _TARGET_PATTERN[self.type]
        if pattern is None:
            if self.target is not None:
                raise ValueError(f"a {self.type} destination takes no target")
        elif self.target is None or not re.fullmatch(pattern, self.target):
            raise ValueError(f"target of a {self.type} destination must match {pattern}")
        return self


class Prompt(Model):
    """A recording (sound file name) or text for text-to-speech. TTS text never reaches the
    dialplan: the renderer plays the recording ``tts/{slug}-{owner}`` produced from it."""

    kind: Literal["recording", "tts"]
    recording: Recording | None = None
    text: LongText | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Prompt:
        if self.kind == "recording" and (self.recording is None or self.text is not None):
            raise ValueError("a recording prompt needs `recording` and no `text`")
        if self.kind == "tts" and (self.text is None or self.recording is not None):
            raise ValueError("a tts prompt needs `text` and no `recording`")
        return self


# --- tenants ------------------------------------------------------------------------------------


class TenantLimits(Model):
    max_users: int = Field(default=50, ge=1, le=10_000)
    max_queues: int = Field(default=10, ge=1, le=500)
    max_menus: int = Field(default=20, ge=1, le=500)
    max_menu_depth: int = Field(default=3, ge=1, le=5, description="menu-to-menu levels allowed")
    max_concurrent_calls: int = Field(default=10, ge=1, le=10_000)
    max_api_keys: int = Field(default=50, ge=1, le=1000,
                              description="API keys (not revoked) the tenant's admins may hold at once")


class TenantIn(Model):
    """A tenant: one customer of a reseller.

    Across objects: ``limits`` are the reseller's to set (a tenant-admin key changing them is
    403), and may not be lowered below what the tenant already has (422 naming the limit);
    ``operator`` must point at an object of the tenant (see Destination)."""

    name: Text
    timezone: Timezone = "Europe/Amsterdam"
    language: Language = "nl"
    limits: TenantLimits = TenantLimits()
    # "0 = operator" in every menu that does not disable it; None: no operator option.
    operator: Destination | None = None
    # Caller ID the tenant presents on outbound calls (callbacks, external forwards).
    outbound_caller_id: Number | None = None


class TenantCreate(TenantIn):
    __doc__ = TenantIn.__doc__  # the same rules: a create only adds the key

    slug: Slug


class Versioned(Model):
    version: int
    created_at: datetime
    updated_at: datetime


class TenantOut(TenantCreate, Versioned):
    reseller: str


# --- users and devices --------------------------------------------------------------------------

UserRole = Literal["agent", "supervisor", "admin"]
DeviceKind = Literal["desk", "softphone", "webrtc"]


class DeviceIn(Model):
    """A SIP device of a user. Its endpoint is ``{slug}-{extension}-{name}``; credentials are
    generated by the server (strong, random) and returned in :class:`DeviceOut`."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,11}$", examples=["desk"])]
    kind: DeviceKind


class DeviceOut(DeviceIn):
    endpoint: str
    username: str
    secret: str


class UserIn(Model):
    """A user (a person with an extension) and the SIP devices that ring for them.

    Across objects: the extension is unique in the tenant (409); a new user must fit
    ``limits.max_users`` (409); a user a destination points at cannot be deleted (409 naming
    where; its queue memberships go with it); device names are unique per user."""

    name: Text
    email: Email | None = None
    mobile: Number | None = None
    role: UserRole = "agent"
    devices: list[DeviceIn] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _unique_device_names(self) -> UserIn:
        names = [d.name for d in self.devices]
        if len(names) != len(set(names)):
            raise ValueError("device names must be unique per user")
        return self


class UserCreate(UserIn):
    __doc__ = UserIn.__doc__  # the same rules: a create only adds the key

    extension: Extension


class UserOut(Versioned):
    extension: Extension
    name: str
    email: str | None
    mobile: str | None
    role: UserRole
    devices: list[DeviceOut]


# --- queues -------------------------------------------------------------------------------------

Strategy = Literal["ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "linear", "wrandom"]


class Level(Model):
    amber: float
    red: float


class WallboardThresholds(Model):
    """Tile colours; same shape as PBX_WALLBOARD_THRESHOLDS per queue."""

    sl_pct: Level | None = None
    waiting: Level | None = None
    longest_wait_s: Level | None = None


class QueueIn(Model):
    """A call queue (Asterisk queue ``{slug}-{name}``).

    Across fields and objects: ``max_wait_s`` and ``overflow`` go together (both or neither);
    ``overflow`` must point at an object of the tenant and ``hours`` at one of its schedules
    (422); a new queue must fit ``limits.max_queues`` (409); a queue a destination points at
    cannot be deleted (409; its memberships go with it)."""

    display_name: Text | None = None
    strategy: Strategy = "rrmemory"
    ring_timeout_s: int = Field(default=15, ge=5, le=300)
    wrapup_s: int = Field(default=0, ge=0, le=600)
    service_level_s: int = Field(default=30, ge=1, le=3600)
    short_abandon_s: int = Field(default=5, ge=0, le=3600)
    max_wait_s: int | None = Field(default=None, ge=10, le=7200)
    overflow: Destination | None = None
    announce_position: bool = True
    announce_expected_wait: bool = True
    # The queue's opening hours: callbacks are dialled only while this schedule is open.
    hours: Name | None = None
    # "Press 1 to be called back, you keep your place", once the expected wait passes this.
    callback_offer: bool = False
    callback_offer_after_s: int = Field(default=120, ge=0, le=7200)
    # Callers who hang up after waiting longer than short_abandon_s get a callback task.
    callback_on_abandon: bool = False
    callback_due_within_s: int = Field(default=3600, ge=60, le=7 * 86400,
                                       description="a callback is overdue this long after it was "
                                       "requested (or after the next opening, if requested while closed)")
    callback_max_attempts: int = Field(default=3, ge=1, le=10)
    callback_retry_s: int = Field(default=300, ge=30, le=86400, description="first retry delay; doubles")
    thresholds: WallboardThresholds = WallboardThresholds()

    @model_validator(mode="after")
    def _overflow_with_max_wait(self) -> QueueIn:
        if (self.max_wait_s is None) != (self.overflow is None):
            raise ValueError("max_wait_s and overflow go together: set both or neither")
        return self


class QueueCreate(QueueIn):
    __doc__ = QueueIn.__doc__  # the same rules: a create only adds the key

    name: Name


class QueueOut(QueueCreate, Versioned):
    asterisk_name: str


class MemberIn(Model):
    """A user's membership of a queue: the extension must be a user of the same tenant (422)."""

    penalty: int = Field(default=0, ge=0, le=10)


class MemberOut(Model):
    queue: str
    extension: str
    penalty: int
    interface: str


# --- IVR menus ----------------------------------------------------------------------------------


class MenuIn(Model):
    """An IVR menu (dialplan context ``{slug}-ivr-{name}``).

    Across fields and objects: digit ``0`` is the operator unless ``operator_enabled`` is false;
    every destination must exist in the tenant and ``hours`` must name one of its schedules
    (422); menus leading to menus (also through a schedule) may nest at most
    ``limits.max_menu_depth`` levels (422 naming the destination that goes too deep); a new menu
    must fit ``limits.max_menus`` (409)."""

    prompt: Prompt
    options: dict[Digit, Destination] = Field(default_factory=dict, examples=[{"1": {"type": "queue",
                                                                                     "target": "sales"}}])
    timeout_s: int = Field(default=5, ge=1, le=60)
    max_repeats: int = Field(default=2, ge=0, le=5, description="replays on timeout/invalid input")
    timeout_destination: Destination = Destination(type="hangup")
    invalid_destination: Destination = Destination(type="hangup")
    operator_enabled: bool = True
    # While this schedule is closed, options that lead to a person (queue, extension, operator)
    # go to its closed destination instead: no "talk to a person" that turns out to be closed.
    hours: Name | None = None

    @model_validator(mode="after")
    def _operator_digit(self) -> MenuIn:
        if self.operator_enabled and "0" in self.options:
            raise ValueError("digit 0 is the operator on this menu; set operator_enabled to false to use it")
        return self


class MenuCreate(MenuIn):
    __doc__ = MenuIn.__doc__  # the same rules: a create only adds the key

    name: Name


class MenuOut(MenuCreate, Versioned):
    context: str


# --- business hours -----------------------------------------------------------------------------


class OpeningSpan(Model):
    days: list[Weekday] = Field(min_length=1, max_length=7)
    open: HHMM
    close: HHMM

    @model_validator(mode="after")
    def _ordered(self) -> OpeningSpan:
        if self.open >= self.close:
            raise ValueError("open must be before close (spans over midnight: use two spans)")
        return self


def _iso_date_text(value: object) -> object:
    # Dates travel as ISO 8601 text in JSON; strict mode would refuse text, lax mode would also
    # take a number (a unix time). Text or a date, nothing else.
    if isinstance(value, bool | int | float):
        raise ValueError("expected an ISO 8601 date like 2026-12-25")
    return value


IsoDate = Annotated[date, Field(strict=False, examples=["2026-12-25"]), BeforeValidator(_iso_date_text)]


class Holiday(Model):
    date: IsoDate
    name: Text


class HoursIn(Model):
    """A business-hours schedule: weekly opening spans (each ``open`` before ``close``; a span
    over midnight is two spans) and dated holidays. Across objects: its destinations must exist
    in the tenant (422); a schedule a queue, menu or destination uses cannot be deleted (409)."""

    weekly: list[OpeningSpan] = Field(min_length=1, max_length=28)
    holidays: list[Holiday] = Field(default_factory=list, max_length=100)
    open_destination: Destination
    closed_destination: Destination = Destination(type="hangup")
    closed_message: Prompt | None = None


class HoursCreate(HoursIn):
    __doc__ = HoursIn.__doc__  # the same rules: a create only adds the key

    name: Name


class HoursOut(HoursCreate, Versioned):
    pass


# --- DIDs and pause reasons ---------------------------------------------------------------------


class DidIn(Model):
    """A phone number routed to a destination of the tenant. Across tenants: a number routes to
    one place on the whole platform, so a number another tenant routes is a 409."""

    destination: Destination
    description: Text | None = None


class DidCreate(DidIn):
    __doc__ = DidIn.__doc__  # the same rules: a create only adds the key

    number: Number


class DidOut(DidCreate, Versioned):
    pass


class PauseReasonIn(Model):
    label: Text
    paid: bool = False


class PauseReasonCreate(PauseReasonIn):
    code: Name


class PauseReasonOut(PauseReasonCreate, Versioned):
    pass


# --- API keys and audit -------------------------------------------------------------------------

KeyRole = Literal["reseller", "tenant-admin", "supervisor", "agent"]


class ApiKeyCreate(Model):
    """A key for the tenant's admins, supervisors or agents. Across objects: ``queues`` (for
    supervisor and agent keys only; a tenant-admin key covers all) must name queues of the tenant
    (422); the tenant holds at most ``limits.max_api_keys`` keys that are not revoked (409)."""

    name: Text
    role: Literal["tenant-admin", "supervisor", "agent"]
    # Supervisors/agents may be limited to some queues (short names); None: all queues.
    queues: list[Name] | None = None


class ApiKeyOut(Model):
    id: str
    name: str
    role: KeyRole
    tenant: str | None
    queues: list[str] | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="shown once; only a hash is stored")


class AuditOut(Model):
    id: int
    at: datetime
    actor: str
    tenant: str | None
    action: Literal["create", "update", "delete", "apply"]
    entity: str
    entity_key: str
    changes: dict[str, Any] | None


# --- what the renderer consumes -----------------------------------------------------------------


class DeviceConfig(Model):
    name: str
    kind: DeviceKind
    secret: str


class UserConfig(Model):
    extension: Extension
    name: Text
    mobile: Number | None = None
    devices: tuple[DeviceConfig, ...] = ()


class QueueConfig(QueueCreate):
    pass


class MemberConfig(Model):
    queue: Name
    extension: Extension
    penalty: int = Field(default=0, ge=0, le=10)


class TenantConfig(Model):
    """One tenant's whole configuration, as the renderer and the applier see it. Collections are
    sorted by their key so the same model always renders the same bytes."""

    slug: Slug
    name: Text
    timezone: Timezone = "Europe/Amsterdam"
    language: Language = "nl"
    operator: Destination | None = None
    outbound_caller_id: Number | None = None
    users: tuple[UserConfig, ...] = ()
    queues: tuple[QueueConfig, ...] = ()
    members: tuple[MemberConfig, ...] = ()
    menus: tuple[MenuCreate, ...] = ()
    hours: tuple[HoursCreate, ...] = ()
    dids: tuple[DidCreate, ...] = ()
