"""`mrt-bridge scale`: many-stream replicas on Ray Serve (sessions over HTTP, audio over TCP PCM)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from bridge.commands.engine_args import add_engine_args, engine_options
from bridge.stop_flag import stop_on_signals

log = logging.getLogger("mrt-bridge.scale")

EPILOG = """\
examples:
  mrt-bridge scale --local-nodes 2 --replicas 2 --streams 4     # a local 3-node Ray cluster on 127.0.0.1
  mrt-bridge scale --address 10.0.0.5:6379 --replicas 8 --model models/mrt2_small   # an existing cluster

  curl -X POST localhost:8000/sessions -d '{"seed": 7}'         # -> {"session", "pcm_host", "pcm_port", ...}
  curl -X POST localhost:8000/sessions/r0-s0/control -d '{"address": "/temperature", "args": [0.9]}'
  curl localhost:8000/status                                     # replicas, sessions, lost sessions

API and behaviour: bridge/scale/ray_serve.py (docstring) and the README.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scale",
        help="serve many streams on Ray Serve: replicas of the batched engine, sessions pinned to them",
        description="Start (or join) a Ray cluster and run the stream router on Ray Serve: REPLICAS replicas, "
                    "each a batched engine for up to STREAMS sessions with one PCM port per session on its "
                    "node. Sessions are opened over HTTP and placed on the least loaded replica; when a "
                    "replica dies only its sessions are lost (reported, reopenable). Needs `pip install "
                    "'magenta-rt-bridge[scale]'` (ray[serve]).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", type=Path, metavar="PKG",
                   help="model package (default: the bundled SYNTHETIC tiny model); every node must see it")
    p.add_argument("--replicas", type=int, default=2, metavar="R",
                   help="stream replicas, each on its own CPU of the cluster (default: %(default)s)")
    p.add_argument("--streams", type=int, default=4, metavar="N",
                   help="sessions per replica (default: %(default)s)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--local-nodes", type=int, metavar="K",
                       help="start a local multi-node cluster on 127.0.0.1: a head and K worker nodes with one "
                            "CPU each (for trying scale-out on one machine)")
    where.add_argument("--address", metavar="HOST:PORT",
                       help="join this running Ray cluster (default without --local-nodes: a one-node local Ray)")
    p.add_argument("--http-host", default="127.0.0.1", help="HTTP address of the router (default: %(default)s)")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP port of the router (default: %(default)s)")
    p.add_argument("--pcm-host", default="127.0.0.1",
                   help="address replicas bind their PCM ports to (default: %(default)s; 0.0.0.0 for a "
                        "cluster of several machines: clients get each node's address)")
    p.add_argument("--buffer-frames", type=int, default=4, metavar="N",
                   help="frames generated ahead per session (default: %(default)s)")
    p.add_argument("--provider", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="ONNX Runtime intra-op threads per replica (default: %(default)s)")
    add_engine_args(p, prefill=False)
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop by itself after this many seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bridge.daemon.stream_host import MAX_STREAMS, HostOptions

    if args.replicas < 1:
        raise ValueError("--replicas must be at least 1")
    if not 1 <= args.streams <= MAX_STREAMS:
        raise ValueError(f"--streams must be 1..{MAX_STREAMS}, got {args.streams}")
    if args.local_nodes is not None and args.local_nodes < 1:
        raise ValueError("--local-nodes must be at least 1")
    if args.local_nodes is not None and args.replicas > args.local_nodes:
        raise ValueError(f"--replicas {args.replicas} needs at least as many --local-nodes (one CPU each)")
    if args.buffer_frames < 1:
        raise ValueError("--buffer-frames must be at least 1")
    if args.http_host in ("127.0.0.1", "localhost") or args.local_nodes is not None:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep Ray on loopback
    try:
        import ray
        from ray import serve
    except ImportError:
        raise RuntimeError("Ray Serve is not installed: pip install 'magenta-rt-bridge[scale]'") from None
    from bridge.scale.ray_serve import ROUTER_RESOURCE, build_app

    model = args.model
    if model is None:
        from bridge.synthetic import NOTICE, bundled_package
        log.warning(NOTICE)
        model = bundled_package()
    num_cfgs = engine_options(args, None)[0]
    host = HostOptions(model=str(Path(model).resolve()), streams=args.streams, provider=args.provider,
                       threads=args.threads, num_cfgs=num_cfgs, buffer_frames=args.buffer_frames, pcm_base=0,
                       pcm_host=args.pcm_host)
    cluster = None
    if args.local_nodes is not None:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "resources": {ROUTER_RESOURCE: 1}, "include_dashboard": False,
            "node_ip_address": "127.0.0.1"})
        for _ in range(args.local_nodes):
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        address = cluster.address
    else:
        address = args.address
    stop = stop_on_signals(log)
    try:
        ray.init(address=address, logging_level="WARNING")
        serve.start(proxy_location="HeadOnly", http_options={"host": args.http_host, "port": args.http_port})
        serve.run(build_app(args.replicas, host, pin_router=cluster is not None), name="mrt-bridge",
                  route_prefix="/")
        log.info("router on http://%s:%d/ : %d replicas x %d sessions (POST /sessions, GET /status)",
                 args.http_host, args.http_port, args.replicas, args.streams)
        stop.wait(args.duration)
    finally:
        serve.shutdown()
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    return 0
