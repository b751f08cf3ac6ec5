"""The rules every provisioning shape shares (pbx_core/provisioning/schemas.py ``Model``): no
control character in any text field, at any depth, and strict types. Checked over every model
and every field, so a field added later is covered without a test of its own."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from pbx_core.provisioning import schemas
from pbx_core.provisioning.schemas import Model

# C0, DEL, C1, a lone surrogate, the line and paragraph separators.
FORBIDDEN = ["\x00", "\x1c", "\x7f", "\x85", "\ud800", "\u2028", "\u2029"]
MODELS = sorted(
    (m for _, m in inspect.getmembers(schemas, inspect.isclass) if issubclass(m, Model) and m is not Model),
    key=lambda m: m.__name__,
)


def _takes_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    return any(_takes_text(arg) for arg in typing.get_args(annotation))


def _text_fields(model: type[BaseModel]) -> list[str]:
    return [name for name, field in model.model_fields.items() if _takes_text(field.annotation)]


def _example(model: type[BaseModel], name: str) -> str:
    examples = model.model_fields[name].examples or []
    example = next((e for e in examples if isinstance(e, str)), None)
    return example or "Ann"


def _errors_at(model: type[BaseModel], data: dict[str, Any], field: str) -> list[str]:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return [str(e["msg"]) for e in exc.errors() if e["loc"][:1] == (field,)]
    return []


def test_every_model_is_covered() -> None:
    names = {m.__name__ for m in MODELS}
    assert {"UserIn", "TenantIn", "QueueIn", "MenuIn", "HoursIn", "ApiKeyCreate", "PauseReasonIn"} <= names
    assert sum(len(_text_fields(m)) for m in MODELS) > 40


@pytest.mark.parametrize("char", FORBIDDEN, ids=[f"U+{ord(c):04X}" for c in FORBIDDEN])
def test_no_text_field_of_any_model_takes_a_control_character(char: str) -> None:
    missed = []
    for model in MODELS:
        for field in _text_fields(model):
            example = _example(model, field)
            value = example[:1] + char + example[1:]
            if not _errors_at(model, {field: value}, field):
                missed.append(f"{model.__name__}.{field}")
    assert not missed, f"{char!r} accepted by {missed}"


def test_the_email_that_made_postgresql_fail_is_refused_with_a_clear_message() -> None:
    for char in ("\x00", "\x1c", "\x7f"):
        (message,) = _errors_at(schemas.UserIn, {"name": "Ann", "email": f"a{char}b@x.com"}, "email")
        assert f"control characters (found U+{ord(char):04X})" in message


def test_control_characters_inside_lists_and_nested_models_are_refused() -> None:
    messages = _errors_at(schemas.ApiKeyCreate, {"name": "k", "role": "agent", "queues": ["a\x00"]}, "queues")
    assert messages
    menu = {"prompt": {"kind": "tts", "text": "Welkom\x00"}}
    with pytest.raises(ValidationError, match="control characters"):
        schemas.MenuIn.model_validate(menu)
    assert schemas.control_character({"ok": ["fine", ("still fine", "bad\x7f")]}) == "\x7f"
    assert schemas.control_character({"k\x00": "v"}) == "\x00"
    assert schemas.control_character(["Ruud van 't Hof", "Zoë", "東京", "emoji 👋"]) is None


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (schemas.PauseReasonIn, {"label": "Lunch", "paid": 0}, "paid"),
        (schemas.PauseReasonIn, {"label": "Lunch", "paid": "true"}, "paid"),
        (schemas.MemberIn, {"penalty": 5.0}, "penalty"),
        (schemas.MemberIn, {"penalty": "5"}, "penalty"),
        (schemas.QueueIn, {"announce_position": 1}, "announce_position"),
        (schemas.QueueIn, {"ring_timeout_s": 15.0}, "ring_timeout_s"),
        (schemas.TenantLimits, {"max_users": True}, "max_users"),
        (schemas.Holiday, {"date": 1767225600, "name": "New year"}, "date"),
    ],
)
def test_types_are_strict(model: type[BaseModel], data: dict[str, Any], field: str) -> None:
    assert _errors_at(model, data, field), f"{data} was accepted"


def test_strictness_keeps_what_json_legitimately_sends() -> None:
    assert schemas.Holiday.model_validate({"date": "2026-12-25", "name": "Kerstmis"}).date.year == 2026
    assert schemas.Level.model_validate({"amber": 85, "red": 70.5}).amber == 85.0
    assert schemas.MemberIn.model_validate({"penalty": 5}).penalty == 5
    assert schemas.PauseReasonIn.model_validate({"label": "Lunch", "paid": True}).paid is True
