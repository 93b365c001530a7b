"""The ``reputation-pipeline`` command line."""
from __future__ import annotations

import argparse
import json
import sys


def _cmd_stack(args) -> int:
    from reputation_pipeline.stack.local import main as stack_main

    return stack_main(args.action)


def _cmd_produce(args) -> int:
    from reputation_pipeline.ingest.kafka_client import KafkaSettings
    from reputation_pipeline.ingest.produce import produce

    summary = produce(KafkaSettings.from_env(), args.platform, args.count, bad=args.bad, rate=args.rate,
                      file=args.file, partitions=args.partitions, crisis_brand=args.crisis_brand,
                      crisis_share=args.crisis_share, seed=args.seed)
    print(json.dumps(summary))
    return 0


def _cmd_ingest(args) -> int:
    from reputation_pipeline.ingest.headless import drain_until_idle
    from reputation_pipeline.ingest.kafka_client import KafkaSettings
    from reputation_pipeline.ingest.planner import PlanningPolicy
    from reputation_pipeline.lake.store import open_lake
    from reputation_pipeline.resources import lake_uri_from_env, platform_selection

    store = open_lake(lake_uri_from_env())
    summary = drain_until_idle(KafkaSettings.from_env(), store, platform_selection(),
                               policy=PlanningPolicy(max_records=args.max_records))
    print(json.dumps({"lake": store.uri, **summary.as_dict()}))
    return 0


PLUGINS = {
    "models": "reputation_pipeline.scoring.cli",
    "alerts": "reputation_pipeline.alerts.cli",
    "import": "reputation_pipeline.ingest.importer",
}


def _cmd_run(args) -> int:
    from reputation_pipeline.pipeline.driver import run_until_idle
    from reputation_pipeline.pipeline.instance import get_instance

    instance = get_instance()
    from reputation_pipeline.definitions import defs

    totals = run_until_idle(defs, instance, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(totals))
    return 0


def _cmd_demo(args) -> int:
    from reputation_pipeline.pipeline.demo import run_demo

    return run_demo(args.calm_posts, args.crisis_posts, keep=args.keep, verbose=args.verbose)


def _cmd_dev(args) -> int:
    from reputation_pipeline.pipeline.dev import run_dev

    return run_dev(port=args.port, host=args.host, verbose=args.verbose)


def build_parser(cmd: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reputation-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stack", help="local Kafka + S3 endpoint for development and tests")
    p.add_argument("action", choices=["up", "down", "status", "env"])
    p.set_defaults(func=_cmd_stack)

    p = sub.add_parser("produce", help="produce synthetic posts (or a JSONL file) to social.posts.<platform>")
    p.add_argument("--platform", required=True)
    p.add_argument("--count", type=int, default=1000, help="good posts to send (with --file: at most this many lines)")
    p.add_argument("--bad", type=int, default=0, help="malformed messages to add, cycling through every class")
    p.add_argument("--rate", type=float, default=None, help="messages per second (default: as fast as possible)")
    p.add_argument("--file", default=None, help="JSONL file of posts to send instead of synthetic ones")
    p.add_argument("--partitions", type=int, default=4, help="partitions if the topic must be created")
    p.add_argument("--crisis-brand", default=None, help="inject a crisis for this brand")
    p.add_argument("--crisis-share", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=_cmd_produce)

    p = sub.add_parser("ingest", help="drain the posts topics into the lake headless")
    p.add_argument("--until-drained", action="store_true", required=True)
    p.add_argument("--max-records", type=int, default=50_000, help="records per partition per plan (bounds memory)")
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("run", help="drive the whole chain headless (sensor, ingest, scoring, dbt, alerts)")
    p.add_argument("--until-idle", action="store_true", required=True)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("dev", help="the Dagster webserver and daemon on DAGSTER_HOME (default ./.dagster): "
                       "sensors drain Kafka and run the live pipeline")
    p.add_argument("--port", "-p", type=int, default=3000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--verbose", action="store_true", help="show the webserver's, daemon's and runs' logs here too")
    p.set_defaults(func=_cmd_dev)

    p = sub.add_parser("demo", help="start the local stack, stream posts with a crisis, run the pipeline, show alerts")
    p.add_argument("--calm-posts", type=int, default=800, help="posts per platform before the crisis")
    p.add_argument("--crisis-posts", type=int, default=800, help="posts per platform during the crisis")
    p.add_argument("--keep", action="store_true", help="leave the local stack it started running")
    p.add_argument("--verbose", action="store_true", help="show Dagster's, dbt's and the stack's logs here too")
    p.set_defaults(func=_cmd_demo)

    # Stage CLIs are imported only for their own command: `ingest` must not pay
    # for importing PyTorch (memory is a budget there).
    wanted = [cmd] if cmd in PLUGINS else list(PLUGINS) if cmd is None else []
    for name in wanted:
        try:
            module = __import__(PLUGINS[name], fromlist=["register_cli"])
        except ModuleNotFoundError as exc:
            if exc.name != PLUGINS[name]:
                raise
            continue  # that stage is not installed in this build
        module.register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cmd = argv[0] if argv and not argv[0].startswith("-") else None
    args = build_parser(cmd).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
