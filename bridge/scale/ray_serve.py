"""Scale-out on Ray Serve: replicas that each host a batched engine, sessions pinned to them.

Layout::

    HTTP (Ray Serve proxy) -> StreamRouter (Serve deployment, one replica: the session table)
                                  |  least-loaded placement, pinned sessions, health checks
                                  v
                           StreamReplica actors (one per Ray node with a free CPU; each a
                           bridge.daemon.stream_host.StreamHost: batched engine, one PCM port
                           per stream on its own node)

A session's state (KV rows, codec state, controls) lives in one replica, so
every call for it goes to that replica. A new session goes to the live replica
with the fewest open sessions. When a replica dies (its node is lost, its
process killed) the router's health check — or the first call that fails —
marks it dead: only its sessions are lost; they are listed under ``lost`` with
the reason, calls on them answer 410 with it, their PCM connections close, and
the client reopens with ``POST /sessions`` (placed on a live replica). The
others play on untouched.

HTTP API (JSON bodies)::

    POST   /sessions                    {"seed": 7}           -> 201 {"session", "replica", "pcm_host", "pcm_port", ...}
    POST   /sessions/<id>/control       {"address": "/temperature", "args": [0.9]}   (the OSC table's addresses)
    GET    /sessions/<id>               -> the stream's status; 410 {"error", "lost": true} if its replica died
    DELETE /sessions/<id>
    GET    /status                      -> replicas (live/dead, load, totals), sessions, lost sessions
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from dataclasses import asdict

import ray
from ray import serve

from bridge.daemon.stream_host import HostOptions, StreamHost

log = logging.getLogger(__name__)

HEALTH_PERIOD_S = 0.5
CALL_TIMEOUT_S = 10.0


@ray.remote(num_cpus=1, max_restarts=0)
class StreamReplica:
    """One replica: a started :class:`StreamHost` (PCM on this node, bound to ``pcm_host``)."""

    def __init__(self, name: str, opts: dict) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.name = name
        self.host = StreamHost(HostOptions(**opts))
        self.host.start()

    def where(self) -> dict:
        ctx = ray.get_runtime_context()
        return {"replica": self.name, "node_id": ctx.get_node_id(), "ip": ray.util.get_node_ip_address()}

    def open(self, seed: int | None) -> dict:
        sid, port = self.host.open(seed)
        return {"stream": sid, "pcm_port": port}

    def close(self, sid: int) -> None:
        self.host.close(sid)

    def control(self, sid: int, address: str, args: list) -> None:
        try:
            self.host.control(sid, address, args)
        except LookupError:
            raise ValueError(f"{address[:80]}: unknown address") from None

    def stream_status(self, sid: int) -> dict:
        return self.host.stream_status(sid)

    def status(self) -> dict:
        return {"totals": self.host.status(), "failed": self.host.failed}


class ReplicaLost(Exception):
    """A call found its replica dead (the router has marked it and its sessions)."""


def _answer(code: int, body: dict):
    from starlette.responses import JSONResponse

    return JSONResponse(body, status_code=code)


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
class StreamRouter:
    """The session table: places, pins and forgets sessions; watches the replicas."""

    def __init__(self, replicas: int, host_opts: dict) -> None:
        self.capacity = int(host_opts["streams"])
        self.replicas: dict[str, ray.actor.ActorHandle] = {}
        self.where: dict[str, dict] = {}
        self.dead: dict[str, str] = {}
        for i in range(int(replicas)):
            name = f"r{i}"
            self.replicas[name] = StreamReplica.options(scheduling_strategy="SPREAD").remote(name, host_opts)
        self.where = {n: w for n, w in zip(self.replicas, ray.get([a.where.remote() for a in self.replicas.values()]))}
        self.pcm_bind = host_opts["pcm_host"]
        self.sessions: dict[str, tuple[str, int]] = {}
        self.lost: dict[str, dict] = {}
        self._ids = itertools.count()
        self.events: list[dict] = []
        self._health: asyncio.Task | None = None  # started on the first request (it needs the loop)

    # -- replicas ---------------------------------------------------------------------------
    def _live(self) -> list[str]:
        return [n for n in self.replicas if n not in self.dead]

    def _mark_dead(self, name: str, reason: str) -> None:
        if name in self.dead:
            return
        self.dead[name] = reason
        gone = [s for s, (r, _) in self.sessions.items() if r == name]
        for s in gone:
            rep, sid = self.sessions.pop(s)
            self.lost[s] = {"replica": rep, "stream": sid, "reason": f"replica {rep} died: {reason}",
                            "at": time.time()}
        self.events.append({"event": "replica_lost", "replica": name, "sessions": gone, "reason": reason,
                            "at": time.time()})
        log.warning("replica %s died (%s): %d sessions lost: %s", name, reason, len(gone), ", ".join(gone) or "-")

    async def _call(self, name: str, method: str, *args):
        try:
            return await asyncio.wait_for(getattr(self.replicas[name], method).remote(*args), CALL_TIMEOUT_S)
        except (TimeoutError, ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            self._mark_dead(name, type(exc).__name__)
            raise ReplicaLost(name) from None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_PERIOD_S)
            for name in self._live():
                try:
                    await self._call(name, "status")
                except ReplicaLost:
                    pass
                except Exception:  # a replica raising is alive; the loop must not die
                    log.exception("health check of %s", name)

    def pcm_host(self, name: str) -> str:
        """Where a client reaches a replica's PCM ports: its node's address unless bound to one address."""
        return self.where[name]["ip"] if self.pcm_bind in ("0.0.0.0", "") else self.pcm_bind

    # -- sessions ----------------------------------------------------------------------------
    async def open_session(self, seed: int | None = None) -> tuple[int, dict]:
        load = {n: 0 for n in self._live()}
        for rep, _ in self.sessions.values():
            load[rep] = load.get(rep, 0) + 1
        for name in sorted(load, key=lambda n: (load[n], n)):  # least loaded first
            if load[name] >= self.capacity:
                continue
            try:
                opened = await self._call(name, "open", seed)
            except ReplicaLost:
                continue
            except ray.exceptions.RayTaskError as exc:  # refused (full) by the replica
                log.info("replica %s refused a session: %s", name, exc.cause if hasattr(exc, "cause") else exc)
                continue
            session = f"{name}-s{next(self._ids)}"
            self.sessions[session] = (name, opened["stream"])
            return 201, {"session": session, "replica": name, "stream": opened["stream"],
                         "pcm_host": self.pcm_host(name), "pcm_port": opened["pcm_port"],
                         "node_id": self.where[name]["node_id"]}
        live = self._live()
        reason = (f"full: all {len(live)} live replicas have {self.capacity} sessions open" if live
                  else "no live replica")
        return 503, {"error": reason}

    def _find(self, session: str) -> tuple[int, dict] | tuple[str, int]:
        if session in self.lost:
            return 410, {"error": self.lost[session]["reason"], "lost": True, "session": session}
        if session not in self.sessions:
            return 404, {"error": f"no session {session!r}"}
        return self.sessions[session]

    async def session_call(self, session: str, method: str, *args) -> tuple[int, dict]:
        found = self._find(session)
        if isinstance(found[0], int):
            return found
        name, sid = found
        try:
            result = await self._call(name, method, sid, *args)
        except ReplicaLost:
            return 410, {"error": self.lost[session]["reason"], "lost": True, "session": session}
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None) or exc
            return 400, {"error": str(cause).splitlines()[-1][:300]}
        if method == "close":
            self.sessions.pop(session, None)
        return 200, {"session": session, "replica": name, "stream": sid, **(result or {})}

    async def status(self) -> dict:
        replicas = {}
        for name in self.replicas:
            entry = {**self.where[name], "live": name not in self.dead,
                     "sessions": sorted(s for s, (r, _) in self.sessions.items() if r == name)}
            if name in self.dead:
                entry["reason"] = self.dead[name]
            else:
                try:
                    entry.update(await self._call(name, "status"))
                except ReplicaLost:
                    entry.update(live=False, reason=self.dead.get(name))
            replicas[name] = entry
        return {"replicas": replicas, "capacity_per_replica": self.capacity,
                "sessions": {s: {"replica": r, "stream": i} for s, (r, i) in self.sessions.items()},
                "lost": self.lost, "events": self.events[-50:]}

    # -- HTTP --------------------------------------------------------------------------------
    async def __call__(self, request):
        if self._health is None:
            self._health = asyncio.get_running_loop().create_task(self._watch())
        path = [p for p in request.url.path.split("/") if p]
        method = request.method
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _answer(400, {"error": "body is not JSON"})
        if not isinstance(body, dict):
            return _answer(400, {"error": "body must be a JSON object"})
        if path == ["status"] and method == "GET":
            return _answer(200, await self.status())
        if path == ["sessions"] and method == "POST":
            seed = body.get("seed")
            if seed is not None and (not isinstance(seed, int) or not 0 <= seed < 2**31):
                return _answer(400, {"error": "seed must be an integer 0..2147483647"})
            return _answer(*await self.open_session(seed))
        if len(path) == 2 and path[0] == "sessions":
            if method == "GET":
                return _answer(*await self.session_call(path[1], "stream_status"))
            if method == "DELETE":
                return _answer(*await self.session_call(path[1], "close"))
        if len(path) == 3 and path[0] == "sessions" and path[2] == "control" and method == "POST":
            address, args = body.get("address"), body.get("args", [])
            if not isinstance(address, str) or not isinstance(args, list):
                return _answer(400, {"error": "expected {\"address\": \"/...\", \"args\": [...]}"})
            return _answer(*await self.session_call(path[1], "control", address, args))
        return _answer(404, {"error": f"no route {method} {request.url.path}"})


ROUTER_RESOURCE = "mrt_router"


def build_app(replicas: int, host: HostOptions, pin_router: bool = False):
    """The Serve application: the router, which starts ``replicas`` stream replicas.

    The router holds the session table: ``pin_router`` places it on the node that offers
    the custom resource ``mrt_router`` (the head of ``scale --local-nodes``), so losing a
    stream replica's node never takes the table with it.
    """
    if host.pcm_base not in (0, None):
        raise ValueError("replicas pick free PCM ports themselves (pcm_base 0)")
    opts = asdict(host)
    opts["model"] = str(opts["model"])
    opts["palette"] = None if opts["palette"] is None else str(opts["palette"])
    opts["pcm_base"] = 0
    router = StreamRouter
    if pin_router:
        router = StreamRouter.options(ray_actor_options={"num_cpus": 0, "resources": {ROUTER_RESOURCE: 0.01}})
    return router.bind(replicas, opts)
