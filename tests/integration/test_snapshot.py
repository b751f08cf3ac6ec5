"""load_tenant_config: rows written with the ORM come back as the renderer's TenantConfig."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_core.provisioning import db
from pbx_core.provisioning.models import (
    BusinessHours,
    Device,
    Did,
    Menu,
    Queue,
    QueueMember,
    Reseller,
    Tenant,
    User,
)
from pbx_core.provisioning.schemas import (
    Destination,
    DeviceConfig,
    DidCreate,
    Holiday,
    HoursCreate,
    HoursIn,
    MemberConfig,
    MenuCreate,
    MenuIn,
    OpeningSpan,
    Prompt,
    QueueConfig,
    QueueIn,
    TenantConfig,
    TenantLimits,
    UserConfig,
    WallboardThresholds,
)
from pbx_core.provisioning.snapshot import load_tenant_config

from .databases import BACKENDS, throwaway_database

SUPPORT = QueueIn(
    display_name="Support",
    strategy="rrmemory",
    ring_timeout_s=20,
    wrapup_s=10,
    max_wait_s=300,
    overflow=Destination(type="voicemail", target="201"),
    callback_offer=True,
    callback_offer_after_s=90,
    thresholds=WallboardThresholds.model_validate({"sl_pct": {"amber": 85, "red": 70}}),
)
SALES = QueueIn(strategy="ringall", service_level_s=60)
MAIN_MENU = MenuIn(
    prompt=Prompt(kind="tts", text="Welcome to Acme. Press 1 for sales, 2 for support."),
    options={
        "2": Destination(type="queue", target="support"),
        "1": Destination(type="queue", target="sales"),
        "9": Destination(type="menu", target="afterhours"),
    },
    timeout_destination=Destination(type="queue", target="support"),
    hours="office",
)
AFTER_MENU = MenuIn(
    prompt=Prompt(kind="recording", recording="custom/acme-closed"),
    options={"1": Destination(type="voicemail", target="201")},
    operator_enabled=False,
)
OFFICE = HoursIn(
    weekly=[
        OpeningSpan(days=["mon", "tue", "wed", "thu", "fri"], open="08:30", close="17:00"),
        OpeningSpan(days=["sat"], open="10:00", close="14:00"),
    ],
    holidays=[Holiday.model_validate({"date": "2026-12-25", "name": "Christmas"})],
    open_destination=Destination(type="menu", target="main"),
    closed_destination=Destination(type="menu", target="afterhours"),
)


@pytest.fixture(params=BACKENDS)
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with throwaway_database(request.param, tmp_path) as url:
        await db.upgrade(url)
        engine = db.make_engine(url)
        try:
            yield db.session_factory(engine)
        finally:
            await engine.dispose()


def _settings(model: QueueIn | MenuIn | HoursIn) -> dict[str, object]:
    return model.model_dump(mode="json")  # what the API stores


async def _insert_acme(session: AsyncSession) -> None:
    """Rows deliberately inserted out of order: the snapshot must sort them itself."""
    reseller = Reseller(name="Acme Telecom")
    session.add(reseller)
    await session.flush()
    acme = Tenant(
        reseller_id=reseller.id, slug="acme", name="Acme B.V.", timezone="Europe/Amsterdam", language="en",
        limits=TenantLimits().model_dump(mode="json"),
        operator={"type": "extension", "target": "201"}, outbound_caller_id="+31201234567",
    )
    other = Tenant(reseller_id=reseller.id, slug="globex", name="Globex", timezone="UTC", language="nl",
                   limits={}, operator=None)
    session.add_all([acme, other])
    await session.flush()

    bob = User(tenant_id=acme.id, extension="210", name="Bob de Vries", role="agent", mobile="+31612345678")
    ann = User(tenant_id=acme.id, extension="201", name="Ann Jansen", role="supervisor", email="ann@acme.nl")
    cees = User(tenant_id=acme.id, extension="202", name="Cees", role="agent")
    stranger = User(tenant_id=other.id, extension="201", name="Globex Gina", role="agent")
    session.add_all([bob, ann, cees, stranger])
    await session.flush()
    session.add_all([
        Device(user_id=ann.id, name="soft", kind="softphone", secret="s3cret-ann-soft"),
        Device(user_id=ann.id, name="desk", kind="desk", secret="s3cret-ann-desk"),
        Device(user_id=bob.id, name="web", kind="webrtc", secret="s3cret-bob-web"),
        Device(user_id=stranger.id, name="desk", kind="desk", secret="globex-secret"),
    ])

    support = Queue(tenant_id=acme.id, name="support", settings=_settings(SUPPORT))
    sales = Queue(tenant_id=acme.id, name="sales", settings=_settings(SALES))
    session.add_all([support, sales, Queue(tenant_id=other.id, name="help", settings=_settings(SALES))])
    await session.flush()
    session.add_all([
        QueueMember(queue_id=support.id, user_id=cees.id, penalty=2),
        QueueMember(queue_id=support.id, user_id=ann.id),
        QueueMember(queue_id=sales.id, user_id=bob.id, penalty=1),
        QueueMember(queue_id=sales.id, user_id=ann.id, penalty=0),
    ])
    session.add_all([
        Menu(tenant_id=acme.id, name="main", settings=_settings(MAIN_MENU)),
        Menu(tenant_id=acme.id, name="afterhours", settings=_settings(AFTER_MENU)),
        BusinessHours(tenant_id=acme.id, name="office", settings=_settings(OFFICE)),
        Did(tenant_id=acme.id, number="+31207654321", destination={"type": "queue", "target": "sales"},
            description="Sales line"),
        Did(tenant_id=acme.id, number="+31201234567", destination={"type": "hours", "target": "office"}),
        Did(tenant_id=other.id, number="+31300000000", destination={"type": "hangup"}),
    ])


EXPECTED = TenantConfig(
    slug="acme",
    name="Acme B.V.",
    timezone="Europe/Amsterdam",
    language="en",
    operator=Destination(type="extension", target="201"),
    outbound_caller_id="+31201234567",
    users=(
        UserConfig(extension="201", name="Ann Jansen", devices=(
            DeviceConfig(name="desk", kind="desk", secret="s3cret-ann-desk"),
            DeviceConfig(name="soft", kind="softphone", secret="s3cret-ann-soft"),
        )),
        UserConfig(extension="202", name="Cees"),
        UserConfig(extension="210", name="Bob de Vries", mobile="+31612345678", devices=(
            DeviceConfig(name="web", kind="webrtc", secret="s3cret-bob-web"),
        )),
    ),
    queues=(
        QueueConfig(name="sales", **SALES.model_dump()),
        QueueConfig(name="support", **SUPPORT.model_dump()),
    ),
    members=(
        MemberConfig(queue="sales", extension="201", penalty=0),
        MemberConfig(queue="sales", extension="210", penalty=1),
        MemberConfig(queue="support", extension="201", penalty=0),
        MemberConfig(queue="support", extension="202", penalty=2),
    ),
    menus=(
        MenuCreate(name="afterhours", **AFTER_MENU.model_dump()),
        MenuCreate(name="main", **MAIN_MENU.model_dump()),
    ),
    hours=(HoursCreate(name="office", **OFFICE.model_dump()),),
    dids=(
        DidCreate(number="+31201234567", destination=Destination(type="hours", target="office")),
        DidCreate(number="+31207654321", destination=Destination(type="queue", target="sales"),
                  description="Sales line"),
    ),
)


async def test_realistic_tenant_round_trips(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        await _insert_acme(session)
    async with sessions() as session:
        config = await load_tenant_config(session, "acme")
    assert config == EXPECTED
    # The nested documents came back typed, not as dicts.
    assert config.queues[1].overflow == Destination(type="voicemail", target="201")
    assert config.menus[1].options["1"] == Destination(type="queue", target="sales")
    assert str(config.hours[0].holidays[0].date) == "2026-12-25"


async def test_snapshot_is_deterministic(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        await _insert_acme(session)
    async with sessions() as session:
        first = await load_tenant_config(session, "acme")
    async with sessions() as session:
        second = await load_tenant_config(session, "acme")
    assert first.model_dump_json() == second.model_dump_json()
    assert [u.extension for u in first.users] == ["201", "202", "210"]
    assert [(m.queue, m.extension) for m in first.members] == [
        ("sales", "201"), ("sales", "210"), ("support", "201"), ("support", "202")
    ]


async def test_other_tenant_and_empty_tenant(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        await _insert_acme(session)
    async with sessions() as session:
        globex = await load_tenant_config(session, "globex")
        assert [u.name for u in globex.users] == ["Globex Gina"]
        assert [q.name for q in globex.queues] == ["help"]
        assert globex.members == () and globex.menus == () and globex.hours == ()
        assert [d.number for d in globex.dids] == ["+31300000000"]
        assert globex.operator is None and globex.timezone == "UTC"
        with pytest.raises(LookupError, match="no tenant 'nosuch'"):
            await load_tenant_config(session, "nosuch")
