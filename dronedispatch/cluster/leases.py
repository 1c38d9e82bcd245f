"""One owner per vehicle link: leases in a JetStream key-value bucket, renewed by compare-and-set, fenced.

Each link (one ``DD_MAVLINK`` entry) has a key in the bucket (:func:`lease_key`); the node whose
value sits under it holds the link. The bucket's TTL removes a value that is not rewritten in time,
so a dead node's links come free by themselves.

- **Acquire**: ``create`` (fails if the key exists). **Renew**: ``update`` with the revision this node
  last wrote, every TTL/3; the server refuses it if anyone else wrote since. **Release**: ``delete``
  with that revision, and a wake-up message so the other nodes claim the link at once.
- **Lost at once**: a refused renewal, or no successful renewal within the TTL (time.monotonic, from
  the moment the last successful renewal was *sent*, which is no later than the server stamped it).
- **Fence**: :meth:`Lease.fence` is True only while the lease is held and its last successful renewal
  is younger than the TTL minus a safety margin. It reads the clock on every call, so a node that was
  paused (SIGSTOP, a long GC, a frozen VM) finds the fence closed when it wakes, before its loop has
  had a chance to notice anything. Every byte sent to a vehicle is checked against it.
- **Which links**: :func:`dronedispatch.cluster.lease_rules.plan` on this node's view each round.
- Values carry the node id and a per-process instance token: a restarted node with the same id does
  not mistake its previous incarnation's leases for its own; it waits for them to expire. A value of
  *this* instance that the manager does not hold (a write that timed out but landed) is taken back by
  compare-and-set on the revision seen, as a new lease.

Callbacks ``on_acquired(link)`` / ``on_lost(link)`` (sync or async) run in order on a task of their
own, so a slow link opening never delays a renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from dronedispatch.cluster.lease_rules import plan

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_TTL",
    "Lease",
    "LeaseManager",
    "LinkCallback",
    "cancel_for_sure",
    "lease_key",
]

log = logging.getLogger(__name__)

DEFAULT_BUCKET = "dd_links"
#: Seconds a lease lives without renewal: fail-over takes about this long after a node dies.
DEFAULT_TTL = 6.0

LinkCallback = Callable[[str], Awaitable[None] | None]
LiveNodes = Callable[[], Awaitable[Collection[str]]]

#: What a key-value operation can fail with when the server is away, slow or refuses.
NATS_ERRORS = (nats.errors.Error, TimeoutError, OSError)


async def cancel_for_sure(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for its end. Cancelling again until it ends: on Python 3.11 a cancel
    that lands as an inner ``wait_for`` completes (as nats-py's requests do) is swallowed."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


def lease_key(link: str) -> str:
    """The bucket key of a link: a short hash of its connection string (NATS keys allow few characters)."""
    return "link_" + hashlib.blake2b(link.encode(), digest_size=10).hexdigest()


@dataclass(eq=False)
class Lease:
    """One holding of one link by this process. Once lost it stays lost: a later holding of the same
    link is a new :class:`Lease` with a new (higher) :attr:`token`."""

    link: str
    key: str
    token: int  # the revision the lease was acquired at: a fencing token, higher on every acquisition
    revision: int  # the revision this node last wrote (changes on every renewal)
    renewed_at: float  # clock() when the last successful write was sent
    ttl: float
    margin: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    lost: bool = False

    def age(self) -> float:
        return self.clock() - self.renewed_at

    def fence(self) -> bool:
        """True only while held and renewed within the TTL minus the safety margin: check before every send."""
        return not self.lost and self.age() < self.ttl - self.margin


@dataclass
class _Seen:
    """One key as read this round."""

    node: str
    instance: str
    revision: int


class LeaseManager:
    """Holds this node's share of the links (see the module's docstring).

    ``links``: the connection strings, one per link; ``live_nodes``: an async callable returning the
    node ids with a live heartbeat (this node counts as live regardless); without it every node sees
    only itself and claims whatever is free. ``margin`` defaults to a quarter of the TTL.
    """

    def __init__(
        self,
        nc: NatsClient,
        node_id: str,
        links: Sequence[str],
        *,
        bucket: str = DEFAULT_BUCKET,
        ttl: float = DEFAULT_TTL,
        margin: float | None = None,
        live_nodes: LiveNodes | None = None,
        on_acquired: LinkCallback | None = None,
        on_lost: LinkCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError("the lease TTL must be positive")
        self.margin = ttl / 4 if margin is None else margin
        if not 0 <= self.margin < ttl:
            raise ValueError("the safety margin must be within the TTL")
        self.nc = nc
        self.node_id = node_id
        self.instance = uuid.uuid4().hex
        self.links = list(dict.fromkeys(links))
        self.keys = {link: lease_key(link) for link in self.links}
        self._link_of = {key: link for link, key in self.keys.items()}
        self.bucket = bucket
        self.ttl = ttl
        self.interval = ttl / 3
        self.clock = clock
        self._live_nodes = live_nodes
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._leases: dict[str, Lease] = {}  # link -> the current lease
        self._unheld_since: dict[str, float] = {}
        self._kv: KeyValue | None = None
        self._wake = asyncio.Event()
        self._callbacks: asyncio.Queue[tuple[LinkCallback, str] | None] = asyncio.Queue()
        self._loop_task: asyncio.Task[None] | None = None
        self._callback_task: asyncio.Task[None] | None = None
        self._wake_sub: object | None = None
        self._stopping = False
        self.rounds = 0  # completed rounds, for tests and metrics

    # -- what the runtime reads --------------------------------------------------------------------

    @property
    def wake_subject(self) -> str:
        return f"dd.leases.{self.bucket}.changed"

    def lease(self, link: str) -> Lease | None:
        """The current lease on ``link`` if this node holds it (even if its fence has just closed)."""
        lease = self._leases.get(link)
        return lease if lease is not None and not lease.lost else None

    def fence(self, link: str) -> bool:
        lease = self.lease(link)
        return lease is not None and lease.fence()

    def revision(self, link: str) -> int | None:
        lease = self.lease(link)
        return None if lease is None else lease.revision

    def held(self) -> list[str]:
        """The links this node holds, in DD_MAVLINK order."""
        return [link for link in self.links if self.lease(link) is not None]

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create (or bind) the bucket and start the rounds. Raises if the server cannot be reached."""
        if self._loop_task is not None:
            raise RuntimeError("the lease manager is already started")
        self._stopping = False
        await self._ensure_bucket()
        self._wake_sub = await self.nc.subscribe(self.wake_subject, cb=self._on_wake)
        self._callback_task = asyncio.create_task(self._run_callbacks(), name=f"leases-callbacks-{self.node_id}")
        self._loop_task = asyncio.create_task(self._run(), name=f"leases-{self.node_id}")

    async def stop(self, release: bool = True) -> None:
        """Stop the rounds; with ``release``, close every fence, run ``on_lost`` and delete the keys
        (by revision) so another node takes the links at once. Without it the leases simply expire."""
        self._stopping = True
        if self._loop_task is not None:
            await cancel_for_sure(self._loop_task)
            self._loop_task = None
        released = [lease for lease in self._leases.values() if not lease.lost]
        for lease in released:
            self._lose(lease, "stopping")
        if self._callback_task is not None:
            await self._callbacks.put(None)
            await self._callback_task  # on_lost has run: the links are closed before anyone else opens them
            self._callback_task = None
        if release and released:
            for lease in released:
                await self._delete(lease)
            await self._announce()
        if self._wake_sub is not None:
            with contextlib.suppress(*NATS_ERRORS):
                await self._wake_sub.unsubscribe()  # type: ignore[attr-defined]
            self._wake_sub = None

    # -- the rounds --------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            started = self.clock()
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the renewals of the other leases
                log.exception("lease round failed on %s", self.node_id)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, self.interval - (self.clock() - started))):
                    await self._wake.wait()

    async def round(self) -> None:
        """Renew, drop what is lost, then claim and hand back by the rules. Public for tests."""
        await self._renew_all()
        if self._kv is None:
            with contextlib.suppress(*NATS_ERRORS):
                await self._ensure_bucket()
        if self._kv is not None:
            view = await self._read_view()
            if view is not None:
                await self._act(view)
        self.rounds += 1

    async def _renew_all(self) -> None:
        held = [lease for lease in self._leases.values() if not lease.lost]
        for lease in held:
            if lease.age() >= self.ttl:
                self._lose(lease, "not renewed within the TTL")
        held = [lease for lease in held if not lease.lost]
        if held and self._kv is not None:
            await asyncio.gather(*(self._renew(lease) for lease in held))

    async def _renew(self, lease: Lease) -> None:
        assert self._kv is not None
        sent = self.clock()
        try:
            revision = await self._kv.update(lease.key, self._value(lease.link), last=lease.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            self._lose(lease, "renewal refused: the key was written by someone else or expired")
            return
        except nats.js.errors.NoStreamResponseError:
            self._kv = None  # the bucket is gone (a server that lost its store): create it next round
            self._lose(lease, "the bucket is gone")
            return
        except NATS_ERRORS as exc:
            # Not refused, just not done: the lease stands until its TTL runs out.
            log.warning("renewing %s failed (%s); lease age %.1fs", lease.link, exc or type(exc).__name__, lease.age())
            return
        if lease.lost:
            return  # lost while the write was in flight (age): stays lost, the key expires or is taken back
        lease.revision = revision
        lease.renewed_at = sent

    async def _read_view(self) -> dict[str, _Seen] | None:
        """Every link's current holder, or None if the bucket could not be read this round."""
        assert self._kv is not None
        kv = self._kv

        async def read(key: str) -> tuple[str, _Seen | None]:
            try:
                entry = await kv.get(key)
            except nats.js.errors.KeyNotFoundError:  # never written, deleted or expired
                return key, None
            try:
                value = json.loads(entry.value or b"")
                return key, _Seen(str(value["node"]), str(value["instance"]), int(entry.revision or 0))
            except (ValueError, KeyError, TypeError):
                return key, _Seen("?", "?", int(entry.revision or 0))  # someone else's writing: held

        try:
            results = await asyncio.gather(*(read(key) for key in self.keys.values()))
        except NATS_ERRORS as exc:
            log.warning("reading the leases failed (%s)", exc or type(exc).__name__)
            return None
        return {self._link_of[key]: seen for key, seen in results if seen is not None}

    async def _act(self, view: dict[str, _Seen]) -> None:
        now = self.clock()
        # A held lease whose key now shows another writer was taken: lost (the renewal would fail too).
        # The view was read after this round's renewals, so it is at least as new as them.
        for link, lease in list(self._leases.items()):
            seen = view.get(link)
            if not lease.lost and (seen is None or seen.instance != self.instance):
                self._lose(lease, "the key no longer holds this node's lease")
        holders: dict[str, str] = {}
        for link, seen in view.items():
            mine = seen.instance == self.instance
            if mine and self.lease(link) is None:
                await self._take_back(link, seen.revision)
            if seen.node == self.node_id and not mine:
                holders[link] = f"{seen.node}#{seen.instance}"  # an earlier incarnation: left to expire
            else:
                holders[link] = seen.node
        for link in self.links:
            if link in holders:
                self._unheld_since.pop(link, None)
            else:
                self._unheld_since.setdefault(link, now)
        overdue = {link for link, since in self._unheld_since.items() if now - since >= self.ttl}
        live = await self._live()
        decision = plan(self.node_id, self.links, live, holders, overdue=overdue)
        for link in decision.release:
            handed = self.lease(link)
            if handed is not None:
                self._lose(handed, "handed back to even out the links")
                await self._delete(handed)
        if decision.release:
            await self._announce()
        for link in decision.claim:
            await self._claim(link)

    async def _live(self) -> Collection[str]:
        if self._live_nodes is None:
            return [self.node_id]
        try:
            return await self._live_nodes()
        except Exception as exc:  # the registry is not this module's to fix: claim as if alone, safely
            log.warning("reading the live nodes failed (%s)", exc or type(exc).__name__)
            return [self.node_id]

    async def _claim(self, link: str) -> None:
        assert self._kv is not None
        sent = self.clock()
        try:
            revision = await self._kv.create(self.keys[link], self._value(link))
        except nats.js.errors.KeyWrongLastSequenceError:
            return  # another node was faster
        except nats.js.errors.NoStreamResponseError:
            self._kv = None
            return
        except NATS_ERRORS as exc:
            log.warning("claiming %s failed (%s)", link, exc or type(exc).__name__)
            return
        self._acquired(link, revision, sent)

    async def _take_back(self, link: str, revision: int) -> None:
        """A value of this instance that no lease stands for (a write that timed out but landed):
        rewrite it on the revision seen, so it becomes a lease with a known renewal time."""
        assert self._kv is not None
        sent = self.clock()
        try:
            new_revision = await self._kv.update(self.keys[link], self._value(link), last=revision)
        except NATS_ERRORS:
            return
        self._acquired(link, new_revision, sent)

    def _acquired(self, link: str, revision: int, sent: float) -> None:
        lease = Lease(link, self.keys[link], revision, revision, sent, self.ttl, self.margin, self.clock)
        self._leases[link] = lease
        self._unheld_since.pop(link, None)
        log.info("%s holds %s (revision %d)", self.node_id, link, revision)
        if self._on_acquired is not None:
            self._callbacks.put_nowait((self._on_acquired, link))

    def _lose(self, lease: Lease, why: str) -> None:
        if lease.lost:
            return
        lease.lost = True
        log.warning("%s lost %s: %s", self.node_id, lease.link, why)
        if self._on_lost is not None:
            self._callbacks.put_nowait((self._on_lost, lease.link))

    async def _delete(self, lease: Lease) -> None:
        if self._kv is None:
            return
        try:
            await self._kv.delete(lease.key, last=lease.revision)
        except NATS_ERRORS as exc:  # refused (someone wrote since) or unreachable: the TTL frees it
            log.info("releasing %s: %s", lease.link, exc or type(exc).__name__)

    async def _announce(self) -> None:
        with contextlib.suppress(*NATS_ERRORS):
            await self.nc.publish(self.wake_subject, self.node_id.encode())
            await self.nc.flush(timeout=max(1, int(self.interval)))

    async def _on_wake(self, msg: Msg) -> None:
        self._wake.set()

    async def _ensure_bucket(self) -> None:
        js = self.nc.jetstream(timeout=max(0.5, self.interval))
        try:
            self._kv = await js.create_key_value(bucket=self.bucket, ttl=self.ttl, history=1)
        except nats.js.errors.BadRequestError:
            # The bucket exists with another configuration (another TTL): use it as it is.
            self._kv = await js.key_value(self.bucket)

    def _value(self, link: str) -> bytes:
        return json.dumps({"node": self.node_id, "instance": self.instance, "link": link}).encode()

    async def _run_callbacks(self) -> None:
        while (item := await self._callbacks.get()) is not None:
            callback, link = item
            try:
                result = callback(link)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("lease callback %s(%s) failed", getattr(callback, "__name__", callback), link)
