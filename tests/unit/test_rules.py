"""Cross-object rules: each rule on its own, with the exact loc the API will name."""

from __future__ import annotations

from pbx_core.provisioning.rules import Problem, check
from pbx_core.provisioning.schemas import (
    Destination,
    DidCreate,
    HoursCreate,
    MemberConfig,
    MenuCreate,
    OpeningSpan,
    Prompt,
    QueueConfig,
    TenantConfig,
    TenantLimits,
    UserConfig,
)
from tests.unit.test_render import acme_config

LIMITS = TenantLimits()
PROMPT = Prompt(kind="recording", recording="custom/x")


def dest(type_: str, target: str | None = None) -> Destination:
    return Destination(type=type_, target=target)  # type: ignore[arg-type]


def menu(name: str, **options: Destination) -> MenuCreate:
    return MenuCreate(name=name, prompt=PROMPT, options={k.removeprefix("d"): v for k, v in options.items()})


def tenant(**update: object) -> TenantConfig:
    return TenantConfig(slug="acme", name="Acme").model_copy(update=update)


def test_realistic_tenant_is_consistent() -> None:
    assert check(acme_config(), LIMITS) == []


def test_chain_of_four_menus_exceeds_depth_three() -> None:
    config = tenant(menus=(menu("a", d1=dest("menu", "b")), menu("b", d1=dest("menu", "c")),
                           menu("c", d2=dest("menu", "d")), menu("d")))
    assert check(config, TenantLimits(max_menu_depth=3)) == [
        Problem(("menus", "c", "options", "2", "target"),
                "menus nest too deep: a -> b -> c -> d is 4 levels; the limit is 3")
    ]
    assert check(config, TenantLimits(max_menu_depth=4)) == []


def test_back_to_main_edge_is_fine() -> None:
    config = tenant(menus=(menu("main", d1=dest("menu", "sub")),
                           menu("sub", d9=dest("menu", "main")), ))
    assert check(config, TenantLimits(max_menu_depth=2)) == []
    looped = tenant(menus=(menu("a", d1=dest("menu", "b")), menu("b", d1=dest("menu", "c")),
                           menu("c", d9=dest("menu", "a"))))
    assert check(looped, TenantLimits(max_menu_depth=3)) == []


def test_depth_counts_menus_reached_through_a_schedule() -> None:
    office = HoursCreate(name="office", weekly=[OpeningSpan(days=["mon"], open="09:00", close="17:00")],
                         open_destination=dest("menu", "b"))
    config = tenant(hours=(office,), menus=(menu("a", d1=dest("hours", "office")), menu("b")))
    problems = check(config, TenantLimits(max_menu_depth=1))
    assert [p.loc for p in problems] == [("menus", "a", "options", "1", "target")]


def test_dangling_targets_are_named_precisely() -> None:
    config = tenant(
        operator=dest("queue", "nope"),
        users=(UserConfig(extension="201", name="Ann"),),
        queues=(QueueConfig(name="support", max_wait_s=60, overflow=dest("voicemail", "299")),),
        menus=(MenuCreate(name="main", prompt=PROMPT, options={"1": dest("extension", "202")},
                          timeout_destination=dest("menu", "gone"), hours="closed_forever"),),
        dids=(DidCreate(number="+31201234567", destination=dest("hours", "office")),),
    )
    problems = check(config, LIMITS)
    assert [p.loc for p in problems] == [
        ("operator", "target"),
        ("queues", "support", "overflow", "target"),
        ("menus", "main", "options", "1", "target"),
        ("menus", "main", "timeout_destination", "target"),
        ("dids", "+31201234567", "destination", "target"),
        ("menus", "main", "hours"),
    ]
    assert problems[0].msg == "there is no queue 'nope' in this tenant"
    assert problems[1].msg == "there is no user '299' in this tenant"
    assert problems[5].msg == "there is no schedule 'closed_forever' in this tenant"


def test_external_and_hangup_need_no_target_in_the_tenant() -> None:
    config = tenant(dids=(DidCreate(number="+31201234567", destination=dest("external", "+31612345678")),
                          DidCreate(number="+31201234568", destination=dest("hangup"))))
    assert check(config, LIMITS) == []


def test_members_of_unknown_users_or_queues() -> None:
    config = tenant(
        users=(UserConfig(extension="201", name="Ann"),),
        queues=(QueueConfig(name="support"),),
        members=(MemberConfig(queue="support", extension="201"), MemberConfig(queue="sales", extension="201"),
                 MemberConfig(queue="support", extension="202")),
    )
    assert check(config, LIMITS) == [
        Problem(("members", 1, "queue"), "there is no queue 'sales' in this tenant"),
        Problem(("members", 2, "extension"), "there is no user '202' in this tenant"),
    ]


def test_limits_exceeded() -> None:
    config = tenant(
        users=tuple(UserConfig(extension=str(200 + i), name=f"U{i}") for i in range(3)),
        queues=(QueueConfig(name="a"), QueueConfig(name="b")),
        menus=(menu("a"), menu("b")),
    )
    limits = TenantLimits(max_users=2, max_queues=1, max_menus=1)
    assert check(config, limits) == [
        Problem(("users",), "this tenant may have at most 2 users (it would have 3)"),
        Problem(("queues",), "this tenant may have at most 1 queues (it would have 2)"),
        Problem(("menus",), "this tenant may have at most 1 menus (it would have 2)"),
    ]
    assert check(config, TenantLimits(max_users=3, max_queues=2, max_menus=2)) == []


def test_operator_counts_as_a_menu_edge_only_where_enabled() -> None:
    config = tenant(operator=dest("menu", "b"), menus=(menu("a"), menu("b")))
    assert [p.loc for p in check(config, TenantLimits(max_menu_depth=1))] == [("operator", "target")]
    off = config.model_copy(update={"menus": (menu("a").model_copy(update={"operator_enabled": False}),
                                              menu("b").model_copy(update={"operator_enabled": False}))})
    assert check(off, TenantLimits(max_menu_depth=1)) == []


def test_callback_destinations_name_an_existing_queue() -> None:
    config = tenant(
        queues=(QueueConfig(name="support"),),
        menus=(menu("night", d1=dest("callback", "support"), d2=dest("callback", "sales")),),
    )
    assert check(config, LIMITS) == [
        Problem(("menus", "night", "options", "2", "target"), "there is no queue 'sales' in this tenant"),
    ]
    operator = config.model_copy(update={"operator": dest("callback", "gone")})
    assert [p.loc for p in check(operator, LIMITS)] == [("operator", "target"),
                                                         ("menus", "night", "options", "2", "target")]


def test_queue_hours_must_be_a_schedule_of_the_tenant() -> None:
    office = HoursCreate(name="office", weekly=[OpeningSpan(days=["mon"], open="09:00", close="17:00")],
                         open_destination=dest("queue", "support"))
    config = tenant(hours=(office,), queues=(QueueConfig(name="support", hours="office"),
                                             QueueConfig(name="sales", hours="weekend")))
    assert check(config, LIMITS) == [
        Problem(("queues", "sales", "hours"), "there is no schedule 'weekend' in this tenant"),
    ]


def test_a_callback_option_is_not_a_menu_level() -> None:
    config = tenant(queues=(QueueConfig(name="support"),),
                    menus=(menu("a", d1=dest("menu", "b")), menu("b", d1=dest("callback", "support"))))
    assert check(config, TenantLimits(max_menu_depth=2)) == []
