"""Property-based conformance of the whole API (schemathesis, in process over ASGI): for generated
requests to every operation, no 5xx, every response matches its declared schema and status codes,
and authentication is enforced (a request without or with a wrong key fails) - as acme's tenant
admin, and as reseller B aiming at acme, who must never get a 2xx there.

Bounded and derandomized (MAX_EXAMPLES per operation) so the suite stays fast and repeatable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.generation.meta import ParameterLocation
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import delete
from sqlalchemy.pool import NullPool
from starlette.applications import Starlette
from starlette.routing import Mount

from pbx_core.api import ApiContext, build_api
from pbx_core.provisioning.db import make_engine, session_factory
from pbx_core.provisioning.keys import create_reseller_key
from pbx_core.provisioning.models import Base
from tests.integration.api.conftest import API_ROOT, auth, run_sync

MAX_EXAMPLES = 20
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, ignored_auth]
KEYS: dict[str, str] = {}


async def _seed(ctx: ApiContext, app: Starlette) -> dict[str, str]:
    """Empty tables, then tenant acme (reseller A) with one of everything, and reseller B."""
    engine = ctx.sessions.kw["bind"]
    async with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(delete(table))
    async with ctx.sessions() as session:
        reseller_a = await create_reseller_key(session, "Reseller A", "a")
        reseller_b = await create_reseller_key(session, "Reseller B", "b")
        await session.commit()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://test{API_ROOT}") as client:

        async def put(path: str, body: dict[str, Any], key: str) -> None:
            r = await client.put(path, json=body, headers=auth(key))
            assert r.status_code in (200, 201), r.text

        await put("/tenants/acme", {"name": "Acme"}, reseller_a)
        await put("/tenants/globex", {"name": "Globex"}, reseller_b)
        r = await client.post(
            "/tenants/acme/api-keys", json={"name": "admin", "role": "tenant-admin"}, headers=auth(reseller_a)
        )
        admin = r.json()["key"]
        await put(
            "/tenants/acme/users/201", {"name": "Ann", "devices": [{"name": "desk", "kind": "desk"}]}, admin
        )
        await put("/tenants/acme/queues/support", {}, admin)
        await put("/tenants/acme/queues/support/members/201", {"penalty": 1}, admin)
        await put("/tenants/acme/pause-reasons/lunch", {"label": "Lunch"}, admin)
        await put(
            "/tenants/acme/dids/0201234567", {"destination": {"type": "queue", "target": "support"}}, admin
        )
    return {"admin": admin, "reseller_b": reseller_b}


@pytest.fixture
def api_schema(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # NullPool: schemathesis drives the app from its own event loop; no connection crosses loops.
    engine = make_engine(database_url, poolclass=NullPool)
    ctx = ApiContext(
        sessions=session_factory(engine),
        rate_limit_per_min=0,
        tenant_rate_limit_per_min=0,
        asterisk_config_dir=tmp_path_factory.mktemp("st") / "pbx-core",
        auth_failures_per_min=100_000,
    )
    app = Starlette(routes=[Mount(API_ROOT, app=build_api(ctx))])
    KEYS.update(run_sync(_seed(ctx, app)))
    yield schemathesis.openapi.from_asgi(f"{API_ROOT}/openapi.json", app)
    run_sync(engine.dispose())


def _aim_at_acme(case: Any) -> None:
    if case.path_parameters and "slug" in case.path_parameters:
        case.path_parameters["slug"] = "acme"


def _mutated(case: Any, location: ParameterLocation) -> bool:
    """Whether a negative case made ``location`` (path, header, ...) violate the schema."""
    meta = case.meta
    component = meta.components.get(location) if meta is not None else None
    return component is not None and component.mode.is_negative


def run_all(
    schema: Any,
    key: str,
    extra: Callable[[Any, Any], None] | None = None,
    *,
    mode: GenerationMode = GenerationMode.POSITIVE,
    checks: list[Any] | None = None,
) -> int:
    """Every operation, MAX_EXAMPLES generated cases each; returns how many operations ran.
    (A loop instead of ``@schema.parametrize()``: its lazy fixture loader does not work with this
    pytest version, and one failing operation should not hide the others.)"""
    failures: list[str] = []
    count = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        count += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            if mode.is_negative and _mutated(case, ParameterLocation.HEADER):
                return  # a missing or broken key: the positive runs' ignored_auth check covers it
            if not (mode.is_negative and _mutated(case, ParameterLocation.PATH)):
                _aim_at_acme(case)  # (a path made invalid on purpose is kept as generated)
            response = case.call_and_validate(headers=auth(key), checks=checks or CHECKS)
            if extra is not None:
                extra(case, response)

        try:
            run()
        except Exception as exc:  # collected: report every failing operation at once
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    return count


def test_api_as_tenant_admin(api_schema: Any) -> None:
    assert run_all(api_schema, KEYS["admin"]) >= 30


def test_api_as_another_reseller(api_schema: Any) -> None:
    def never_inside_acme(case: Any, response: Any) -> None:
        if case.path_parameters and case.path_parameters.get("slug") == "acme":
            assert not 200 <= response.status_code < 300, (case.method, case.formatted_path, response.text)

    assert run_all(api_schema, KEYS["reseller_b"], never_inside_acme) >= 30


def test_api_refuses_what_its_schema_forbids(api_schema: Any) -> None:
    """Negative cases - wrong types (``"paid": 0``, ``"penalty": 5.0``), values out of range,
    missing or unknown fields - must be refused (4xx), never accepted: the OpenAPI document is
    what the API enforces."""
    checks = [not_a_server_error, negative_data_rejection]
    assert run_all(api_schema, KEYS["admin"], mode=GenerationMode.NEGATIVE, checks=checks) >= 30
