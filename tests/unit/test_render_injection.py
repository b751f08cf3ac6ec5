"""Config and dialplan injection cannot happen (DESIGN.md: a newline, ';', ',', '(' or '[' in user
input never reaches a config file or a dialplan argument).

(a) Through the schemas: pydantic refuses identifiers with such characters, naming the field.
(b) Bypassing them (``model_construct`` / ``model_copy(update=...)``): the renderer raises
    UnsafeValue for identifiers, and free text is sanitised so that the parsed output has exactly
    the sections, keys and priorities of a harmless twin.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pbx_core.asterisk.render import UnsafeValue, render_index, render_tenant
from pbx_core.provisioning.schemas import (
    Destination,
    DeviceConfig,
    Holiday,
    Prompt,
    TenantConfig,
    UserConfig,
)
from tests.unit.test_render import acme_config

NASTY = ["Ann\n[evil]\ntype=endpoint", "Ann;comment", "Ann, Bob", "Ann)", "${SHELL(rm -rf /)}",
         "[acme-internal]", "Ann\r\nexten => 1,1,Hangup()", "x\x00y", "a\u2028b"]

# --- a tiny Asterisk config parser ---------------------------------------------------------------

Line = tuple[str, str, str]  # (section, key, value)


def parse(data: bytes) -> list[Line]:
    """Sections, key=value / key => value lines and #include directives; anything else fails.
    Comments (';' to end of line, unless escaped) are dropped like Asterisk does."""
    out: list[Line] = []
    section = ""
    for raw in data.decode("utf-8").split("\n"):
        line = re.sub(r"(?<!\\);.*", "", raw).strip()
        if not line:
            continue
        if m := re.fullmatch(r"\[([^\]]+)\]", line):
            section = m.group(1)
            out.append((section, "[section]", ""))
        elif m := re.fullmatch(r"#(include|tryinclude) (\S+)", line):
            out.append((section, f"#{m.group(1)}", m.group(2)))
        elif m := re.fullmatch(r"([^=]+?)\s*=>?\s*(.*)", line):
            out.append((section, m.group(1), m.group(2)))
        else:
            raise AssertionError(f"unparseable line {raw!r}")
    return out


def priorities(lines: list[Line]) -> list[tuple[str, str, str, str]]:
    """Dialplan lines as (context, extension, priority, application call)."""
    out = []
    for section, key, value in lines:
        if key in ("exten", "same"):
            parts = value.split(",", 2) if key == "exten" else ["", *value.split(",", 1)]
            out.append((section, *parts))
    return out


SAFE_TEXT = re.compile(r"[\w .'-]*")


def assert_same_shape(evil: dict[str, bytes], twin: dict[str, bytes]) -> None:
    """Same files, sections, keys and dialplan; only display text may differ, and it is safe."""
    assert evil.keys() == twin.keys()
    for path in evil:
        got, want = parse(evil[path]), parse(twin[path])
        assert [(s, k) for s, k, _ in got] == [(s, k) for s, k, _ in want], path
        for (section, key, value), (_, _, expected) in zip(got, want, strict=True):
            if value == expected:
                continue
            if key == "callerid":
                m = re.fullmatch(r'"(.*)" <(\d+)>', value)
                assert m and SAFE_TEXT.fullmatch(m.group(1)), value
            elif path.endswith("voicemail.conf"):
                pin, _, name = value.partition(",")
                assert pin.isdigit() and SAFE_TEXT.fullmatch(name), value
            else:
                raise AssertionError(f"{path} [{section}] {key}: {value!r} != {expected!r}")
        if path.endswith("extensions.conf"):
            assert priorities(got) == priorities(want)


# --- (a) through the schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [x for x in NASTY if re.search(r"[\x00-\x1f]", x)])
def test_schemas_refuse_control_characters_in_names(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        UserConfig(extension="201", name=bad)
    assert info.value.errors()[0]["loc"] == ("name",)
    with pytest.raises(ValidationError) as info:
        Prompt(kind="tts", text=bad)
    assert info.value.errors()[0]["loc"] == ("text",)


@pytest.mark.parametrize("bad", ["acme;", "acme\n", "ac[me", "acme,x", "ACME"])
def test_schemas_refuse_unsafe_identifiers(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        TenantConfig(slug=bad, name="x")
    assert info.value.errors()[0]["loc"] == ("slug",)
    with pytest.raises(ValidationError) as info:
        Prompt(kind="recording", recording=bad + ")")
    assert info.value.errors()[0]["loc"] == ("recording",)
    with pytest.raises(ValidationError):
        Destination(type="queue", target=bad + ")")
    with pytest.raises(ValidationError) as info:
        UserConfig(extension="2" + bad, name="x")
    assert info.value.errors()[0]["loc"] == ("extension",)


@pytest.mark.parametrize("bad", [x for x in NASTY if not re.search(r"[\x00-\x1f\u2028]", x)])
def test_printable_names_pass_the_schema_and_are_sanitised(bad: str) -> None:
    config = acme_config()
    users = (UserConfig(extension="201", name=bad, devices=config.users[0].devices), *config.users[1:])
    assert_same_shape(render_tenant(config.model_copy(update={"users": users})), render_tenant(config))


# --- (b) bypassing the schemas -------------------------------------------------------------------

TEXT = st.text(min_size=0, max_size=60) | st.sampled_from(NASTY)


def _with_free_text(texts: list[str]) -> TenantConfig:
    """acme with every free-text field replaced (unvalidated)."""
    it = iter(texts)
    config = acme_config()
    users = tuple(u.model_copy(update={"name": next(it)}) for u in config.users)
    queues = tuple(q.model_copy(update={"display_name": next(it)}) for q in config.queues)
    menus = tuple(
        m.model_copy(update={"prompt": Prompt.model_construct(kind="tts", text=next(it), recording=None)})
        if m.prompt.kind == "tts" else m
        for m in config.menus
    )
    hours = tuple(h.model_copy(update={
        "holidays": [Holiday.model_construct(date=x.date, name=next(it)) for x in h.holidays],
        "closed_message": Prompt.model_construct(kind="tts", text=next(it), recording=None),
    }) for h in config.hours)
    dids = tuple(d.model_copy(update={"description": next(it)}) for d in config.dids)
    return config.model_copy(update={"name": next(it), "users": users, "queues": queues, "menus": menus,
                                     "hours": hours, "dids": dids})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TEXT, min_size=20, max_size=20))
def test_free_text_cannot_change_the_structure(texts: list[str]) -> None:
    assert_same_shape(render_tenant(_with_free_text(texts)), render_tenant(_with_free_text(["x"] * 20)))


def _replace_user(config: TenantConfig, **update: object) -> TenantConfig:
    return config.model_copy(update={"users": (config.users[0].model_copy(update=update), *config.users[1:])})


def _replace_device(config: TenantConfig, **update: object) -> TenantConfig:
    u = config.users[0]
    device = u.devices[0].model_copy(update=update)
    return _replace_user(config, devices=(device, *u.devices[1:]))


def _replace_option(config: TenantConfig, menu: str, digit: str, type_: str, target: str) -> TenantConfig:
    menus = tuple(m.model_copy(update={"options": {**m.options, digit: Destination.model_construct(
        type=type_, target=target)}}) if m.name == menu else m for m in config.menus)
    return config.model_copy(update={"menus": menus})


IDENTIFIER_CASES = {
    "slug": (lambda c, v: c.model_copy(update={"slug": v}), "slug"),
    "extension": (lambda c, v: _replace_user(c, extension=v), "users.0.extension"),
    "device": (lambda c, v: _replace_device(c, name=v), "users.0.devices.0.name"),
    "secret": (lambda c, v: _replace_device(c, secret=v), "users.0.devices.0.secret"),
    "caller_id": (lambda c, v: c.model_copy(update={"outbound_caller_id": v}), "outbound_caller_id"),
    "timezone": (lambda c, v: c.model_copy(update={"timezone": v}), "timezone"),
    "did": (lambda c, v: c.model_copy(update={"dids": (c.dids[0].model_copy(update={"number": v}),)}),
            "dids.0.number"),
    "recording": (lambda c, v: c.model_copy(update={"menus": (c.menus[0].model_copy(update={
        "prompt": Prompt.model_construct(kind="recording", recording=v, text=None)}), *c.menus[1:])}),
                  "menus.main.prompt.recording"),
    "target": (
        lambda c, v: c.model_copy(update={"operator": Destination.model_construct(type="queue", target=v)}),
        "operator.target",
    ),
    "callback_target": (lambda c, v: _replace_option(c, "closed", "1", "callback", v),
                        "menus.closed.options.1.target"),
    "queue": (lambda c, v: c.model_copy(update={"queues": (c.queues[0].model_copy(update={"name": v}),)}),
              "queues.0.name"),
}
INJECTIONS = ["x\n[evil]", "1;x", "a,b", "a)", "${X}", "[x]", "Acme-1", "", " 201"]


@pytest.mark.parametrize("case", sorted(IDENTIFIER_CASES))
@pytest.mark.parametrize("value", INJECTIONS)
def test_unsafe_identifiers_raise_naming_the_field(case: str, value: str) -> None:
    build, field = IDENTIFIER_CASES[case]
    with pytest.raises(UnsafeValue) as info:
        render_tenant(build(acme_config(), value))
    assert str(info.value).startswith(f"{field}:")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_any_extension_either_renders_cleanly_or_raises(value: str) -> None:
    config = _replace_user(acme_config(), extension=value)
    try:
        files = render_tenant(config)
    except UnsafeValue:
        assert not re.fullmatch(r"[1-9][0-9]{1,5}", value) or value in {"202", "203", "204"}
        return
    assert re.fullmatch(r"[1-9][0-9]{1,5}", value)
    for data in files.values():
        parse(data)


def test_wrong_types_from_model_construct_are_refused() -> None:
    config = acme_config()
    with pytest.raises(UnsafeValue, match=r"queues.sales.ring_timeout_s"):
        render_tenant(config.model_copy(update={"queues": (
            config.queues[0].model_copy(update={"ring_timeout_s": "15\n[evil]"}), config.queues[1])}))
    with pytest.raises(UnsafeValue, match=r"queues.sales.strategy"):
        render_tenant(config.model_copy(update={"queues": (
            config.queues[0].model_copy(update={"strategy": "ringall\nmember=x"}), config.queues[1])}))
    with pytest.raises(UnsafeValue, match=r"users.0.devices.0.kind"):
        render_tenant(_replace_device(config, kind="webrtc\nwebrtc=no"))
    with pytest.raises(UnsafeValue, match=r"menus.main.options"):
        render_tenant(config.model_copy(update={"menus": (config.menus[0].model_copy(update={
            "options": {"1,n": Destination(type="hangup")}}), config.menus[1])}))
    with pytest.raises(UnsafeValue, match="language"):
        render_tenant(config.model_copy(update={"language": "nl)"}))
    with pytest.raises(UnsafeValue, match=r"users"):
        render_tenant(config.model_copy(update={"users": (*config.users, config.users[0])}))
    with pytest.raises(UnsafeValue, match=r"hours.office.weekly.0.open"):
        render_tenant(config.model_copy(update={"hours": (config.hours[0].model_copy(update={"weekly": [
            config.hours[0].weekly[0].model_copy(update={"open": "18:00"})]}),)}))
    support = config.queues[1]
    for key in ("callback_offer", "announce_expected_wait"):
        with pytest.raises(UnsafeValue, match=rf"queues.support.{key}"):
            render_tenant(config.model_copy(update={"queues": (
                config.queues[0], support.model_copy(update={key: "yes\ncontext=evil"}))}))
    good = DeviceConfig(name="phone", kind="webrtc", secret="x" * 16)
    assert render_tenant(_replace_device(config, **good.model_dump()))  # the harmless twin renders


def test_index_refuses_injected_slugs() -> None:
    for bad in INJECTIONS:
        with pytest.raises(UnsafeValue):
            render_index([bad])


# --- the callbacks' contexts (issue 5) -----------------------------------------------------------

NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40) | st.sampled_from([*INJECTIONS, "sales", "support_2"]))
def test_any_queue_name_with_the_offer_renders_cleanly_or_raises(value: str) -> None:
    """The queue name reaches context names, queues.conf ``context=``, GLOBAL(PBX_EWT_/PBX_OFFER_)
    names and UserEvent headers: it renders only if it is a strict short name."""
    config = acme_config()
    offered = config.queues[1].model_copy(update={"name": value, "callback_offer": True})
    try:
        files = render_tenant(config.model_copy(update={"queues": (config.queues[0], offered)}))
    except UnsafeValue as exc:
        # "sales" is a valid name, but the other queue's: a duplicate.
        assert str(exc).startswith("queues:" if value == "sales" else "queues.1.name:")
        assert not NAME.fullmatch(value) or value == "sales"
        return
    assert NAME.fullmatch(value)
    lines = parse(files["acme/extensions.conf"])
    assert (f"acme-queue-{value}-exit", "[section]", "") in lines
    assert (f"acme-callback-book-{value}", "[section]", "") in lines
    assert ("acme-" + value, "context", f"acme-queue-{value}-exit") in parse(files["acme/queues.conf"])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40) | st.sampled_from(INJECTIONS))
def test_any_callback_target_renders_cleanly_or_raises(value: str) -> None:
    config = _replace_option(acme_config(), "closed", "1", "callback", value)
    try:
        files = render_tenant(config)
    except UnsafeValue as exc:
        assert str(exc).startswith("menus.closed.options.1.target:")
        assert not NAME.fullmatch(value)
        return
    assert NAME.fullmatch(value)
    assert ("acme-ivr-closed", "exten", f"1,1,Goto(acme-callback-book-{value},s,1)") in parse(
        files["acme/extensions.conf"])


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=20) | st.sampled_from(INJECTIONS))
def test_any_outbound_caller_id_in_the_callback_context_renders_cleanly_or_raises(value: str) -> None:
    try:
        files = render_tenant(acme_config().model_copy(update={"outbound_caller_id": value}))
    except UnsafeValue as exc:
        assert str(exc).startswith("outbound_caller_id:")
        assert not re.fullmatch(r"\+?[0-9]{3,15}", value)
        return
    assert re.fullmatch(r"\+?[0-9]{3,15}", value)
    assert ("acme-callback", "same", f"n,Set(CALLERID(num)={value})") in parse(files["acme/extensions.conf"])
