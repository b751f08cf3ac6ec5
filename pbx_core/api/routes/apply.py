"""/tenants/{slug}/apply, /apply-runs and /config: push a tenant's configuration to Asterisk.

``POST /apply`` renders the tenant from the database, writes the files that changed and reloads
the modules that read them (:func:`pbx_core.asterisk.apply.apply_tenant`), then makes the queue
members in Asterisk equal the stored ones. Every run is recorded (``GET /apply-runs``). A run that
Asterisk refuses is a 502 with Asterisk's message; the previous files are back in place.
``GET /config`` previews the rendered files; they hold SIP secrets, so tenant admins and up only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ...ami.client import AmiClient, AmiOptions
from ...ami.errors import AmiError
from ...asterisk.apply import ApplyResult
from ...asterisk.render import render_tenant
from ...asterisk.tenant_apply import TenantApplied, apply_tenant_with_members, remove_tenant_with_prompts
from ...provisioning.models import ApplyRun, Tenant, utcnow
from ...provisioning.schemas import Model, TenantConfig
from .. import audit
from ..auth import Access, TenantReader, TenantWriter, api_context, tenant_access
from ..candidate import current_config
from ..errors import ApiError, responses
from ..pagination import Page, Paging, paginate
from ..util import utc, utc_opt

router = APIRouter(prefix="/tenants/{slug}", tags=["apply"])

RunStatus = Literal["running", "ok", "unchanged", "written", "failed"]
# One short AMI session per apply: no event stream, no resync of queue state.
AMI_OPTIONS = AmiOptions(resync_on_connect=False, event_filter=False)
ConfigReader = Annotated[Access, Depends(tenant_access(
    "tenant-admin", "read the rendered configuration (it holds the devices' SIP secrets)"))]


class MemberSync(Model):
    """What the apply changed in the queues' dynamic members (``queue/interface`` strings)."""

    added: list[str]
    removed: list[str]
    penalties: list[str]
    errors: list[str]


class PromptChanges(Model):
    """Spoken prompts the apply wrote (new or changed text) and removed (sound names, e.g.
    ``tts/acme-main``); the configuration can be ``unchanged`` while a prompt was spoken again."""

    spoken: list[str]
    removed: list[str]


class ApplyOut(Model):
    """``ok``: written and reloaded; ``unchanged``: nothing to write; ``written``: written, but no
    AMI connection is configured, so Asterisk was not reloaded (see ``note``)."""

    run: int
    status: Literal["ok", "unchanged", "written"]
    changed: list[str]
    reloads: list[str]
    note: str | None = None
    members: MemberSync | None = None
    prompts: PromptChanges | None = None


class ApplyRunOut(Model):
    id: int
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    changed: list[str]
    reloads: list[str]
    error: str | None


def run_out(r: ApplyRun) -> ApplyRunOut:
    return ApplyRunOut(id=r.id, status=r.status, started_at=utc(r.started_at),  # type: ignore[arg-type]
                       finished_at=utc_opt(r.finished_at), changed=list(r.changed_files or []),
                       reloads=list(r.reloads or []), error=r.error)


async def _all_slugs(session: AsyncSession) -> list[str]:
    return sorted((await session.scalars(select(Tenant.slug))).all())


async def _apply(request: Request, config: TenantConfig,
                 all_slugs: list[str]) -> tuple[ApplyResult, MemberSync | None, PromptChanges | None]:
    """Files, then queue members (also after a rolled-back apply: see
    :mod:`pbx_core.asterisk.tenant_apply`) on a short-lived AMI session, or only the files when no
    AMI is configured."""
    ctx = api_context(request)
    if ctx.ami_url is None:
        offline = await apply_tenant_with_members(None, ctx.asterisk_config_dir, config, all_slugs=all_slugs,
                                                  sounds_dir=ctx.asterisk_sounds_dir)
        return offline.files, None, _prompts(offline)
    try:
        async with AmiClient(ctx.ami_url, AMI_OPTIONS) as ami:
            applied = await apply_tenant_with_members(ami, ctx.asterisk_config_dir, config,
                                                      all_slugs=all_slugs, sounds_dir=ctx.asterisk_sounds_dir)
    except AmiError as exc:
        return ApplyResult("failed", error=f"cannot talk to Asterisk over AMI: {exc}"), None, None
    result, synced = applied.files, applied.members
    if synced is None:
        return result, None, _prompts(applied)
    members = MemberSync(added=[f"{q}/{i}" for q, i in synced.added],
                         removed=[f"{q}/{i}" for q, i in synced.removed],
                         penalties=[f"{q}/{i}={p}" for q, i, p in synced.penalties], errors=synced.errors)
    return result, members, _prompts(applied)


def _prompts(applied: TenantApplied) -> PromptChanges | None:
    if applied.prompts is None:
        return None
    return PromptChanges(spoken=list(applied.prompts.spoken), removed=list(applied.prompts.removed))


async def forget_live_state(request: Request, slug: str) -> None:
    """The live side forgets the slug (``ApiContext.tenant_forgotten``; logs its own failures)."""
    hook = api_context(request).tenant_forgotten
    if hook is not None:
        await hook(slug)


async def remove_from_asterisk(request: Request, slug: str) -> ApplyResult | None:
    """After a tenant is deleted: remove its generated files, drop it from the index files and
    reload (over AMI when configured). None when it was never applied here."""
    ctx = api_context(request)
    if not (ctx.asterisk_config_dir / slug).is_dir():
        return None
    if ctx.ami_url is None:
        return await remove_tenant_with_prompts(None, ctx.asterisk_config_dir, slug,
                                                sounds_dir=ctx.asterisk_sounds_dir)
    try:
        async with AmiClient(ctx.ami_url, AMI_OPTIONS) as ami:
            return await remove_tenant_with_prompts(ami, ctx.asterisk_config_dir, slug,
                                                    sounds_dir=ctx.asterisk_sounds_dir)
    except AmiError as exc:
        return ApplyResult("failed", error=f"cannot talk to Asterisk over AMI: {exc}")


@router.post("/apply", response_model=ApplyOut, summary="Apply the tenant's configuration to Asterisk",
             responses=responses(403, 404, 409, 502))
async def apply(request: Request, access: TenantWriter) -> ApplyOut:
    """Renders, writes what changed, reloads the affected modules and syncs queue members. 502
    (``apply_failed``) when Asterisk refuses the new files: the message is Asterisk's, the
    previous files are restored, and the run is recorded as failed."""
    session, tenant = access.session, access.tenant
    try:
        config = await current_config(session, tenant)
    except ValueError as exc:  # a stored document that no longer validates
        raise ApiError(409, f"the stored configuration of tenant {access.slug!r} is invalid: {exc}") from None
    run = ApplyRun(tenant_id=tenant.id, status="running")
    session.add(run)
    await session.commit()
    outcome, members, prompts = await _apply(request, config, await _all_slugs(session))
    run.status, run.finished_at = outcome.status, utcnow()
    run.changed_files, run.reloads = list(outcome.changed), list(outcome.reloads)
    run.error = outcome.error
    if members is not None and members.errors:
        run.error = "; ".join(filter(None, [outcome.error, "queue members: " + "; ".join(members.errors)]))
    audit.record(session, access.principal, tenant_id=tenant.id, action="apply", entity="tenant",
                 key=access.slug, changes={"run": run.id, "status": outcome.status,
                                           "changed": list(outcome.changed), "error": outcome.error})
    await session.commit()
    if outcome.status == "failed":
        raise ApiError(502, f"Asterisk did not accept the configuration of tenant {access.slug!r}: "
                            f"{outcome.error}")
    applied = api_context(request).tenant_applied
    if outcome.status == "ok" and applied is not None:
        await applied(access.slug)  # the live state follows at once (a queue may have gone)
    return ApplyOut(run=run.id, status=outcome.status, changed=list(outcome.changed),  # type: ignore[arg-type]
                    reloads=list(outcome.reloads), note=outcome.note, members=members, prompts=prompts)


@router.get("/apply-runs", response_model=Page[ApplyRunOut], summary="The tenant's apply runs, newest first",
            responses=responses(403, 404))
async def list_runs(request: Request, response: Response, access: TenantReader, paging: Paging,
                    status: RunStatus | None = None) -> Page[ApplyRunOut]:
    stmt = (select(ApplyRun).where(ApplyRun.tenant_id == access.tenant.id)
            .order_by(ApplyRun.started_at.desc(), ApplyRun.id.desc()))
    if status is not None:
        stmt = stmt.where(ApplyRun.status == status)
    return await paginate(access.session, stmt, paging, run_out, request, response)


@router.get("/config", response_model=dict[str, str],
            summary="Preview the rendered Asterisk files ({path: text}); holds SIP secrets",
            responses=responses(403, 404, 409))
async def preview_config(access: ConfigReader) -> dict[str, str]:
    try:
        files = render_tenant(await current_config(access.session, access.tenant))
    except ValueError as exc:  # UnsafeValue, or a stored document that no longer validates
        raise ApiError(409, f"the configuration of tenant {access.slug!r} cannot be rendered: {exc}",
                       ) from None
    return {path: data.decode("utf-8", errors="replace") for path, data in sorted(files.items())}
