"""``reputation-pipeline alerts tail``: follow the alerts topic."""
from __future__ import annotations

import json
import sys
import time
import uuid

from reputation_pipeline.alerts.publisher import ALERTS_TOPIC, decode_alert
from reputation_pipeline import settings


def tail(kafka, topic: str = ALERTS_TOPIC, *, from_beginning: bool = False, idle_timeout: float | None = None,
         as_json: bool = False, out=sys.stdout, max_messages: int | None = None, to_end: bool = False,
         stop=None) -> int:
    """Print alerts as they arrive (one JSON object per line with ``as_json``),
    skipping repeats of an alert_id already shown (consumer-side dedup). Stops
    after ``idle_timeout`` seconds without a message, or with ``to_end`` once every
    partition is read up to the end it had when the tail started (an offset, not a
    timer: what a script or test that wants "every alert so far" needs), or once ``stop``
    (a ``threading.Event``) is set. Returns the count shown."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    from reputation_pipeline.alerts.render import alert_line, plain

    consumer = Consumer({**kafka.client_config(), "group.id": f"reputation-alerts-tail-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    seen: set[str] = set()
    shown = 0
    try:
        parts: list[int] = []
        deadline = time.monotonic() + (idle_timeout if idle_timeout is not None else 30)
        while not parts:
            if stop is not None and stop.is_set():
                return 0
            md = consumer.list_topics(topic, timeout=10)
            t = md.topics.get(topic)
            if t is not None and not t.error and t.partitions:
                parts = sorted(t.partitions)
            elif to_end or (idle_timeout is not None and time.monotonic() > deadline):
                return 0  # no such topic: nothing was ever published to it
            else:
                time.sleep(1)
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in parts])
        # the end of each partition now; read_committed: the last stable offset
        ends = {}
        for p in parts if to_end and from_beginning else []:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > max(low, 0):  # an empty partition has nothing to wait for
                ends[p] = high
        last = time.monotonic()
        while (max_messages is None or shown < max_messages) and not (stop is not None and stop.is_set()):
            if to_end and all(_position(consumer, topic, p) >= end for p, end in ends.items()):
                break
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                    break
                continue
            last = time.monotonic()
            alert = decode_alert(msg.value())
            if alert is None:
                continue
            aid = alert.get("alert_id") or dict(msg.headers() or []).get("alert_id", b"").decode()
            if aid in seen:
                continue
            seen.add(aid)
            shown += 1
            if as_json:
                out.write(json.dumps(alert, sort_keys=True) + "\n")
            else:
                out.write(f"{alert_line(alert).plain}  ({plain(aid, 12)})\n")  # message values made safe
                for post in (alert.get("explanation") or {}).get("top_posts", [])[:3]:
                    out.write(f"    {plain(post.get('platform'), 32)}: {plain(post.get('url'))}\n")
            out.flush()
    finally:
        consumer.close()
    return shown


def _position(consumer, topic: str, partition: int) -> int:
    """The next offset this consumer will read (negative until it has fetched)."""
    from confluent_kafka import TopicPartition

    return consumer.position([TopicPartition(topic, partition)])[0].offset


def _cmd_alerts_tail(args) -> int:

    from reputation_pipeline.ingest.kafka_client import KafkaSettings

    topic = settings.ALERTS_TOPIC.get()
    try:
        tail(KafkaSettings.from_env(), topic, from_beginning=args.from_beginning, idle_timeout=args.idle_timeout,
             as_json=args.json, to_end=args.to_end)
    except KeyboardInterrupt:
        pass
    return 0


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("alerts", help="brand alerts")
    alerts_sub = p.add_subparsers(dest="alerts_command", required=True)
    t = alerts_sub.add_parser("tail", help="follow the reputation.alerts topic")
    t.add_argument("--from-beginning", action="store_true", help="start at the oldest retained alert")
    t.add_argument("--idle-timeout", type=float, default=None, metavar="S",
                   help="exit after S seconds without a new alert (default: follow forever)")
    t.add_argument("--to-end", action="store_true",
                   help="exit once every alert published before the tail started has been read")
    t.add_argument("--json", action="store_true", help="one JSON alert per line")
    t.set_defaults(func=_cmd_alerts_tail)
