"""Unit tests of offset planning and the plan/commit log (local folder)."""
import pytest

from reputation_pipeline.ingest.checks import commit_log_problems
from reputation_pipeline.ingest.planner import PartitionView, PlannedRange, PlanningPolicy, plan_partition, waiting_since
from reputation_pipeline.ingest.plans import Commit, PlanLog
from reputation_pipeline.lake.store import LocalStore

POLICY = PlanningPolicy(max_records=100, min_records=10, max_delay_s=30)


def test_first_plan_starts_at_log_start_and_is_capped():
    assert plan_partition(PartitionView(0, low=5, high=1000, next_start=None), POLICY, now=0) == PlannedRange(0, 5, 105)


def test_continues_from_last_plan():
    assert plan_partition(PartitionView(1, low=0, high=150, next_start=100), POLICY, now=0) == PlannedRange(1, 100, 150)


def test_small_backlog_waits_until_max_delay():
    view = PartitionView(0, low=0, high=3, next_start=0)
    assert plan_partition(view, POLICY, now=100) is None
    since = waiting_since(view, None, now=100)
    assert since == 100
    later = PartitionView(0, 0, 3, 0, waiting_since=since)
    assert plan_partition(later, POLICY, now=120) is None
    assert plan_partition(later, POLICY, now=131) == PlannedRange(0, 0, 3)
    assert plan_partition(view, POLICY, now=100, force=True) == PlannedRange(0, 0, 3)


def test_nothing_to_do_and_pending_cap():
    assert plan_partition(PartitionView(0, 0, 100, 100), POLICY, now=0) is None
    assert plan_partition(PartitionView(0, 0, 500, 100, pending_plans=2), POLICY, now=0) is None


def test_retention_gap_is_not_skipped_by_the_planner():
    # the start stays below the log start so the run fails loudly and records the gap
    assert plan_partition(PartitionView(0, low=50, high=80, next_start=10), POLICY, now=0, force=True) == PlannedRange(0, 10, 80)


def test_plan_creation_is_fenced(tmp_path):
    log = PlanLog(LocalStore(tmp_path))
    first = log.create_plan("social.posts.x", PlannedRange(0, 0, 100))
    assert first is not None
    # a racing planner that saw a different high watermark cannot take the same start
    assert log.create_plan("social.posts.x", PlannedRange(0, 0, 120)) is None
    assert log.get_plan("social.posts.x", 0, 0).end == 100


def test_commit_is_written_once(tmp_path):
    log = PlanLog(LocalStore(tmp_path))
    c = Commit("social.posts.x", 0, 0, 10, rows=10, quarantined=0, files=[], quarantine_files=[],
               partition_keys=[], last_offset_read=9)
    assert log.commit(c) and not log.commit(c)
    assert [x.end for x in log.commits("social.posts.x", 0)] == [10]


def _c(start, end):
    return Commit("t", 0, start, end, 0, 0, [], [], [], end - 1)


def test_commit_log_problems():
    assert commit_log_problems([_c(0, 10), _c(10, 20), _c(20, 25)]) == []
    assert "overlaps" in commit_log_problems([_c(0, 10), _c(5, 20)])[0]
    assert "not committed" in commit_log_problems([_c(0, 10), _c(15, 20)])[0]


def test_unsafe_topic_names_never_reach_a_path(tmp_path):
    import pytest

    log = PlanLog(LocalStore(tmp_path))
    with pytest.raises(ValueError):
        log.create_plan("../../etc", PlannedRange(0, 0, 1))
    with pytest.raises(ValueError):
        LocalStore(tmp_path).put("a/../../b", b"x")


def test_watermarks_retry_transient_broker_errors_only():
    """A restarted broker answers NOT_LEADER_FOR_PARTITION until leaders are
    elected: retried with backoff. A permanent error is raised at once."""
    from confluent_kafka import KafkaError, KafkaException

    from reputation_pipeline.ingest.kafka_client import watermarks

    class FlakyConsumer:
        def __init__(self, errors):
            self.errors, self.calls = list(errors), 0

        def get_watermark_offsets(self, tp, timeout, cached):
            self.calls += 1
            if self.errors:
                raise KafkaException(KafkaError(self.errors.pop(0)))
            return (0, 42)

    slept = []
    c = FlakyConsumer([KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE])
    assert watermarks(c, "social.posts.x", 0, sleep=slept.append) == (0, 42)
    assert c.calls == 3 and slept == [0.25, 0.5]
    with pytest.raises(KafkaException):
        watermarks(FlakyConsumer([KafkaError.TOPIC_AUTHORIZATION_FAILED]), "t", 0, sleep=slept.append)
    with pytest.raises(KafkaException):  # gives up after retry_for
        watermarks(FlakyConsumer([KafkaError.NOT_LEADER_FOR_PARTITION] * 100), "t", 0, retry_for=0.0, sleep=slept.append)
