"""Route modules, one per resource. Each defines ``router: APIRouter``; build_api includes them
in this order. A module that does not exist (yet) is skipped."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from fastapi import APIRouter

MODULES = (
    "tenants",
    "users",
    "queues",
    "menus",
    "hours",
    "dids",
    "pause_reasons",
    "api_keys",
    "wallboard_tokens",
    "audit",
    "apply",
    "callbacks",
    "callers",
)


def routers() -> Iterator[APIRouter]:
    for name in MODULES:
        qualified = f"{__name__}.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:
                continue
            raise
        yield module.router
