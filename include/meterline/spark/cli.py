"""`meterline spark start|stop|status|build`: the local cluster, and the heavy models on it."""

from __future__ import annotations

import argparse
import json


def cmd_spark(args: argparse.Namespace) -> int:
    from meterline.spark import cluster

    if args.action == "start":
        running = cluster.start(workers=args.workers)
        print(
            f"[meterline] spark cluster up: master {running.master_url}, thrift {running.thrift_url},"
            f" {args.workers} worker(s), data and logs in {running.home}"
        )
    elif args.action == "stop":
        print("[meterline] spark cluster stopped" if cluster.stop() else "[meterline] no spark cluster running")
    elif args.action == "status":
        state = cluster.status()
        if state is None:
            print("[meterline] no spark cluster started here")
            return 1
        print(json.dumps(state, indent=2))
        return 0 if all(state["processes"].values()) and state["thrift_listening"] else 1
    elif args.action == "build":
        import os

        from meterline import warehouse
        from meterline.spark import engine

        os.environ["WAREHOUSE_ENGINE"] = "spark"
        print(json.dumps(engine.build(warehouse.url()), indent=2))
    return 0


def register(commands) -> None:
    spark = commands.add_parser(
        "spark",
        help="a local Spark cluster for WAREHOUSE_ENGINE=spark (docs/spark.md)",
        description="start: a standalone master, workers and the Thrift server from the pyspark wheel, on"
        " 127.0.0.1, data and logs in .spark/ (METERLINE_SPARK_HOME moves it); stop; status; build: the heavy"
        " models on Spark and their hand-off to the warehouse's marts.",
    )
    spark.add_argument("action", choices=["start", "stop", "status", "build"])
    spark.add_argument("--workers", type=int, default=2, help="workers to start (1 core, 1 GiB each); default 2")
    spark.set_defaults(func=cmd_spark)
