"""/tenants/{slug}/queues and their members.

A queue is ``{slug}-{name}`` in Asterisk; its settings are stored as the QueueIn document.
Members are dynamic in Asterisk (QueueAdd/QueueRemove, never ``member=`` lines): the database
holds who should be a member, and when an AMI connection is configured a membership change is
also made in Asterisk at once (see :func:`put_member`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ...ami.client import AmiClient, AmiOptions
from ...ami.errors import AmiError
from ...provisioning.models import Queue, QueueMember, User
from ...provisioning.schemas import (
    EXTENSION_PATTERN,
    NAME_PATTERN,
    MemberConfig,
    MemberIn,
    MemberOut,
    Model,
    QueueConfig,
    QueueCreate,
    QueueIn,
    QueueOut,
    Strategy,
    TenantConfig,
    UserConfig,
)
from .. import audit
from ..auth import Access, TenantReader, TenantWriter, api_context
from ..candidate import check_candidate, check_removal, limits_of, replaced
from ..errors import ApiError, conflict, invalid, not_found, responses
from ..etag import check_preconditions, set_etag
from ..pagination import Page, Paging, page_of, paginate
from ..util import created, utc

router = APIRouter(prefix="/tenants/{slug}/queues", tags=["queues"])

NamePath = Annotated[str, Path(description="The queue's short name", examples=["support"],
                               pattern=NAME_PATTERN)]
ExtensionPath = Annotated[str, Path(description="The member's extension", examples=["201"],
                                    pattern=EXTENSION_PATTERN)]
# A short-lived AMI session for one membership change: no event stream, no resync.
AMI_OPTIONS = AmiOptions(resync_on_connect=False, event_filter=False, connect_timeout_s=5.0,
                         action_timeout_s=10.0)


def queue_in(q: Queue) -> QueueIn:
    return QueueIn.model_validate(q.settings)


def queue_out(slug: str, q: Queue) -> QueueOut:
    return QueueOut.model_validate({
        **q.settings, "name": q.name, "asterisk_name": f"{slug}-{q.name}", "version": q.version,
        "created_at": utc(q.created_at), "updated_at": utc(q.updated_at),
    })


async def load_queue(session: AsyncSession, tenant_id: int, name: str) -> Queue | None:
    return await session.scalar(select(Queue).where(Queue.tenant_id == tenant_id, Queue.name == name))


async def _visible_queue(access: Access, name: str) -> Queue:
    """The queue, or 404 - also when the key is limited to other queues."""
    queue = await load_queue(access.session, access.tenant.id, name)
    if queue is None or not access.principal.sees_queue(name):
        raise not_found(f"queue {name!r} in tenant {access.slug!r}")
    return queue


async def _validate(access: Access, name: str, body: QueueIn, creating: bool) -> None:
    session, tenant = access.session, access.tenant
    if creating:
        limit = limits_of(tenant).max_queues
        count = await session.scalar(select(func.count()).where(Queue.tenant_id == tenant.id)) or 0
        if count >= limit:
            raise conflict(f"tenant {tenant.slug!r} already has {count} queues, its limit "
                           f"(limits.max_queues) is {limit}; ask the reseller to raise it or delete a queue")
    candidate = QueueConfig(name=name, **body.model_dump())
    await check_candidate(session, tenant, lambda c: replaced(c, "queues", name, candidate),
                          target=("queues", name))


async def _create(access: Access, name: str, body: QueueIn) -> Queue:
    await _validate(access, name, body, creating=True)
    queue = Queue(tenant_id=access.tenant.id, name=name, settings=body.model_dump(mode="json"))
    access.session.add(queue)
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="create",
                 entity="queue", key=name, after=body.model_dump(mode="json"))
    await access.session.commit()
    return queue


@router.get("", response_model=Page[QueueOut], summary="List queues", responses=responses(403, 404))
async def list_queues(
    request: Request, response: Response, access: TenantReader, paging: Paging,
    strategy: Strategy | None = None,
    q: Annotated[str | None, Query(max_length=32, description="substring of the name")] = None,
) -> Page[QueueOut]:
    stmt = select(Queue).where(Queue.tenant_id == access.tenant.id).order_by(Queue.name)
    if q:
        stmt = stmt.where(Queue.name.like(f"%{q.lower()}%"))
    if access.principal.queues is not None:
        stmt = stmt.where(Queue.name.in_(access.principal.queues))
    if strategy is not None:  # inside the JSON document: filtered in Python, queues are few
        rows = (await access.session.scalars(stmt)).all()
        items = [queue_out(access.slug, r) for r in rows if r.settings.get("strategy") == strategy]
        return page_of(items, paging, request, response)
    return await paginate(access.session, stmt, paging, lambda r: queue_out(access.slug, r),
                          request, response)


@router.post("", response_model=QueueOut, status_code=201, summary="Create a queue",
             responses=responses(403, 404, 409))
async def create_queue(request: Request, response: Response, body: QueueCreate,
                       access: TenantWriter) -> QueueOut:
    if await load_queue(access.session, access.tenant.id, body.name) is not None:
        raise conflict(f"queue {body.name!r} already exists in tenant {access.slug!r}",
                       fields=[("body.name", "already exists")])
    queue = await _create(access, body.name, QueueIn.model_validate(body.model_dump(exclude={"name"})))
    created(request, response, f"/tenants/{access.slug}/queues/{queue.name}", queue.version)
    return queue_out(access.slug, queue)


@router.get("/{name}", response_model=QueueOut, summary="Get a queue", responses=responses(403, 404))
async def get_queue(response: Response, name: NamePath, access: TenantReader) -> QueueOut:
    queue = await _visible_queue(access, name)
    set_etag(response, queue.version)
    return queue_out(access.slug, queue)


@router.put("/{name}", response_model=QueueOut, summary="Create or replace a queue",
            responses={**responses(403, 404, 409, 412), 201: {"model": QueueOut, "description": "Created"}})
async def put_queue(request: Request, response: Response, name: NamePath, body: QueueIn,
                    access: TenantWriter) -> QueueOut:
    queue = await load_queue(access.session, access.tenant.id, name)
    check_preconditions(request, queue.version if queue is not None else None, f"queue {name!r}")
    if queue is None:
        queue = await _create(access, name, body)
        created(request, response, f"/tenants/{access.slug}/queues/{name}", queue.version)
        return queue_out(access.slug, queue)
    current = queue_in(queue)
    if body != current:
        await _validate(access, name, body, creating=False)
        queue.settings = body.model_dump(mode="json")
        audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="update",
                     entity="queue", key=name, before=current.model_dump(mode="json"),
                     after=body.model_dump(mode="json"))
        await access.session.commit()
    set_etag(response, queue.version)
    return queue_out(access.slug, queue)


@router.delete("/{name}", status_code=204, response_class=Response, summary="Delete a queue",
               responses=responses(403, 404, 409, 412))
async def delete_queue(request: Request, name: NamePath, access: TenantWriter) -> Response:
    queue = await load_queue(access.session, access.tenant.id, name)
    if queue is None:
        raise not_found(f"queue {name!r} in tenant {access.slug!r}")
    check_preconditions(request, queue.version, f"queue {name!r}")

    def drop_members(config: TenantConfig) -> TenantConfig:  # the database cascades them
        return config.model_copy(update={"members": tuple(m for m in config.members if m.queue != name)})

    await check_removal(access.session, access.tenant, "queues", name, f"queue {name!r}",
                        cascade=drop_members)
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="delete",
                 entity="queue", key=name, before=queue_in(queue).model_dump(mode="json"))
    await access.session.delete(queue)
    await access.session.commit()
    return Response(status_code=204)


# --------------------------------------------------------------------------- members

# members.MemberError's wording for QueueAdd/QueueRemove's "No such queue".
NO_SUCH_QUEUE = "does not exist in Asterisk"
AsteriskState = Literal["updated", "pending", "unchanged"]


class MemberChange(Model):
    """A membership change and what became of it in Asterisk: ``updated`` (done over AMI now),
    ``pending`` (no AMI connection configured, or the queue not applied yet: made by the next
    POST /tenants/{slug}/apply),
    ``unchanged`` (nothing to do)."""

    queue: str
    extension: str
    penalty: int | None
    interface: str
    asterisk: AsteriskState
    note: str | None = None


def _interface(slug: str, extension: str) -> str:
    from ...asterisk.render import member_interface

    return member_interface(slug, extension)


def member_out(slug: str, queue: str, extension: str, penalty: int) -> MemberOut:
    return MemberOut(queue=queue, extension=extension, penalty=penalty, interface=_interface(slug, extension))


async def _user(access: Access, extension: str) -> User:
    user = await access.session.scalar(
        select(User).where(User.tenant_id == access.tenant.id, User.extension == extension))
    if user is None:
        raise invalid("path.extension", f"there is no user {extension} in tenant {access.slug!r}")
    return user


async def _in_asterisk(request: Request, access: Access, what: str,
                       change: Any) -> tuple[AsteriskState, str | None]:
    """Runs ``change(ami)`` on a short-lived AMI session when one is configured. The database
    change is already committed: the stored membership is the truth, Asterisk follows it. A queue
    Asterisk does not have yet (never applied) makes the change pending; any other AMI failure is
    a 502 whose message says the change was saved and how it gets to Asterisk."""
    from ...asterisk.members import MemberError

    url = api_context(request).ami_url
    if url is None:
        return "pending", ("saved; Asterisk is not connected (PBX_AMI_URL), the change reaches it with the "
                           f"next POST /tenants/{access.slug}/apply")
    try:
        async with AmiClient(url, AMI_OPTIONS) as ami:
            await change(ami)
    except MemberError as exc:
        if NO_SUCH_QUEUE in str(exc):  # never applied yet: the first apply creates it with its members
            return "pending", (f"saved; the queue is not in Asterisk yet, POST /tenants/{access.slug}/apply "
                               "creates it with its members")
        raise ApiError(502, f"{what} was saved, but Asterisk did not take it: {exc}. It is retried by "
                            f"the next POST /tenants/{access.slug}/apply") from None
    except AmiError as exc:
        raise ApiError(502, f"{what} was saved, but Asterisk did not take it: {exc}. It is retried by "
                            f"the next POST /tenants/{access.slug}/apply") from None
    return "updated", None


@router.get("/{name}/members", response_model=Page[MemberOut], summary="List a queue's members",
            responses=responses(403, 404))
async def list_members(request: Request, response: Response, name: NamePath, access: TenantReader,
                       paging: Paging) -> Page[MemberOut]:
    queue = await _visible_queue(access, name)
    stmt = (select(User.extension, QueueMember.penalty).join(User, QueueMember.user_id == User.id)
            .where(QueueMember.queue_id == queue.id).order_by(User.extension))
    rows = (await access.session.execute(stmt)).all()
    items = [member_out(access.slug, name, ext, penalty) for ext, penalty in rows]
    return page_of(items, paging, request, response)


@router.get("/{name}/members/{extension}", response_model=MemberOut, summary="Get one member",
            responses=responses(403, 404))
async def get_member(name: NamePath, extension: ExtensionPath, access: TenantReader) -> MemberOut:
    queue = await _visible_queue(access, name)
    row = (await access.session.execute(
        select(QueueMember.penalty).join(User, QueueMember.user_id == User.id)
        .where(QueueMember.queue_id == queue.id, User.extension == extension))).first()
    if row is None:
        raise not_found(f"member {extension} of queue {name!r} in tenant {access.slug!r}")
    return member_out(access.slug, name, extension, row[0])


@router.put("/{name}/members/{extension}", response_model=MemberChange,
            summary="Add a member to a queue, or change its penalty",
            responses={**responses(403, 404, 502), 201: {"model": MemberChange, "description": "Added"}})
async def put_member(request: Request, response: Response, name: NamePath, extension: ExtensionPath,
                     body: MemberIn, access: TenantWriter) -> MemberChange:
    """Idempotent: 201 when added, 200 when the penalty changed or nothing did.

    The membership is stored first. With an AMI connection it is then made in Asterisk at once
    (QueueAdd, or QueuePenalty if already there): ``asterisk: "updated"``. Without one, ``asterisk:
    "pending"``: the next apply makes it. If Asterisk refuses (e.g. the queue was never applied),
    the stored change is kept - it is what the tenant asked for - and the answer is 502 saying so;
    the next apply retries it. A queue that was never applied is not a failure: ``pending``."""
    queue = await load_queue(access.session, access.tenant.id, name)
    if queue is None:
        raise not_found(f"queue {name!r} in tenant {access.slug!r}")
    user = await _user(access, extension)
    member = await access.session.get(QueueMember, (queue.id, user.id))
    if member is not None and member.penalty == body.penalty:
        return MemberChange(queue=name, extension=extension, penalty=body.penalty,
                            interface=_interface(access.slug, extension), asterisk="unchanged")
    key = f"{name}/{extension}"
    if member is None:
        new = MemberConfig(queue=name, extension=extension, penalty=body.penalty)
        await check_candidate(access.session, access.tenant,
                              lambda c: c.model_copy(update={"members": (*c.members, new)}))
        access.session.add(QueueMember(queue_id=queue.id, user_id=user.id, penalty=body.penalty))
        audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="create",
                     entity="queue_member", key=key, after={"penalty": body.penalty})
        created(request, response, f"/tenants/{access.slug}/queues/{name}/members/{extension}")
    else:
        audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="update",
                     entity="queue_member", key=key, before={"penalty": member.penalty},
                     after={"penalty": body.penalty})
        member.penalty = body.penalty
    await access.session.commit()

    from ...asterisk.members import add_member

    member_config = MemberConfig(queue=name, extension=extension, penalty=body.penalty)
    user_config = UserConfig(extension=extension, name=user.name)
    state, note = await _in_asterisk(
        request, access, f"member {extension} of queue {name!r}",
        lambda ami: add_member(ami, access.slug, member_config, user_config))
    return MemberChange(queue=name, extension=extension, penalty=body.penalty,
                        interface=_interface(access.slug, extension), asterisk=state, note=note)


@router.delete("/{name}/members/{extension}", response_model=MemberChange,
               summary="Remove a member from a queue", responses=responses(403, 404, 502))
async def delete_member(request: Request, name: NamePath, extension: ExtensionPath,
                        access: TenantWriter) -> MemberChange:
    """Answers 200 with what became of the removal in Asterisk (``asterisk``: updated or pending;
    see :func:`put_member`), not 204, so the client learns whether Asterisk already follows."""
    queue = await load_queue(access.session, access.tenant.id, name)
    user = await access.session.scalar(
        select(User).where(User.tenant_id == access.tenant.id, User.extension == extension))
    member = await access.session.get(QueueMember, (queue.id, user.id)) if queue and user else None
    if member is None:
        raise not_found(f"member {extension} of queue {name!r} in tenant {access.slug!r}")
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="delete",
                 entity="queue_member", key=f"{name}/{extension}", before={"penalty": member.penalty})
    await access.session.delete(member)
    await access.session.commit()

    from ...asterisk.members import remove_member

    state, note = await _in_asterisk(
        request, access, f"removal of member {extension} from queue {name!r}",
        lambda ami: remove_member(ami, access.slug, name, extension))
    return MemberChange(queue=name, extension=extension, penalty=None,
                        interface=_interface(access.slug, extension), asterisk=state, note=note)
