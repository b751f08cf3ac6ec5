"""The demo's provisioning data: a reseller, its key, and one tenant per simulated tenant.

Seeded through the REST API itself (in process), so the demo's data passes the same validation,
audit and limits as a reseller's, and the printed key works on the running API at once.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.routing import Mount

from .api import ApiContext, build_api
from .provisioning.keys import create_reseller_key
from .simulator.traffic import TrafficConfig, queue_names, tenant_slugs

RESELLER = "Demo Reseller"
COMPANY_NAMES = ("Acme Bakery", "Bright Dental", "Canal Logistics", "Dijk Insurance", "Eiland Travel",
                 "Fjord Software", "Gouda Groceries", "Haven Housing")
# What the wallboard shows for the simulator's queue names and pause reasons (as a tenant would
# set them up), so the demo's board reads like a real customer's.
QUEUE_DISPLAY = {"support": "Customer support", "sales": "Sales", "billing": "Billing", "service": "Service",
                 "orders": "Orders", "info": "Information", "returns": "Returns", "helpdesk": "Helpdesk"}
PAUSE_LABELS = {"lunch": "Lunch", "break": "Coffee break", "training": "Training", "meeting": "Team meeting",
                "admin": "Paperwork"}


class SeedError(RuntimeError):
    pass


async def seed_demo(sessions: async_sessionmaker[AsyncSession], traffic: TrafficConfig) -> str:
    """Create the demo reseller and its tenants, users, queues and members; return the
    reseller's API key (shown to the person running the demo)."""
    async with sessions() as session:
        key = await create_reseller_key(session, RESELLER, "demo")
        await session.commit()
    # No AMI here: membership goes to the database only; the simulator already has its agents.
    api = build_api(ApiContext(sessions=sessions, rate_limit_per_min=0, asterisk_config_dir=Path("unused")))
    app = Starlette(routes=[Mount("/api/v1", app=api)])
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://demo/api/v1", headers=headers
    ) as api_client:
        for i, slug in enumerate(tenant_slugs(traffic.tenants)):
            await _put(api_client, f"/tenants/{slug}", {
                "name": COMPANY_NAMES[i % len(COMPANY_NAMES)] if i < len(COMPANY_NAMES) else f"Tenant {slug}",
                "limits": {"max_users": max(50, traffic.queues * traffic.agents),
                           "max_queues": max(10, traffic.queues)},
            })
            for code, label in PAUSE_LABELS.items():
                await _put(api_client, f"/tenants/{slug}/pause-reasons/{code}", {"label": label})
            extension = 201
            for full_name in queue_names(slug, traffic.queues):
                queue = full_name.partition("-")[2]
                await _put(api_client, f"/tenants/{slug}/queues/{queue}", {
                    **({"display_name": QUEUE_DISPLAY[queue]} if queue in QUEUE_DISPLAY else {}),
                    "strategy": "rrmemory", "service_level_s": traffic.service_level_s,
                    "wrapup_s": traffic.wrapup_s, "ring_timeout_s": traffic.ring_timeout_s,
                    # The demo shows callbacks: simulated callers press 1 when offered.
                    "callback_offer": True, "callback_offer_after_s": 60, "callback_on_abandon": True,
                })
                for _ in range(traffic.agents):
                    await _put(api_client, f"/tenants/{slug}/users/{extension}", {
                        "name": f"Agent {extension}",
                        "devices": [{"name": "web", "kind": "webrtc"}, {"name": "soft", "kind": "softphone"}],
                    })
                    member = f"/tenants/{slug}/queues/{queue}/members/{extension}"
                    await _put(api_client, member, {"penalty": 0})
                    extension += 1
    return key


async def _put(client: httpx.AsyncClient, path: str, body: dict[str, object]) -> None:
    response = await client.put(path, json=body)
    if response.status_code not in (200, 201):
        raise SeedError(f"demo seed: PUT {path} -> {response.status_code} {response.text[:300]}")
