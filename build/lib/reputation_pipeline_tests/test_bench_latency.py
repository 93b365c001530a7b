"""The pure parts of bench/bench_alert_latency.py that its headline figure rests on:
when the stream first met a rule (the detection latency's start), the crisis
schedule, and the percentiles. No services."""
import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_alert_latency.py"
_spec = importlib.util.spec_from_file_location("bench_alert_latency", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def row(toxicity=0.1, followers=100, post_risk=0.1, exposure=1.0, is_scored=True):
    return (toxicity, followers, post_risk, exposure, is_scored)


def test_toxic_post_is_met_by_the_first_toxic_high_reach_scored_post():
    rows = [row(toxicity=0.95, followers=10),               # toxic, too small an audience
            row(toxicity=0.95, followers=90_000, is_scored=False),  # not scored
            row(toxicity=0.5, followers=90_000),
            row(toxicity=0.8, followers=50_000),             # both bounds inclusive, as the mart's >=
            row(toxicity=0.99, followers=1_000_000)]
    assert bench.first_met("toxic_post", rows, 0.8, 0, 50_000) == 3
    assert bench.first_met("toxic_post", rows[:3], 0.8, 0, 50_000) is None


def test_risk_threshold_needs_the_volume_floor_and_the_weighted_risk():
    # fct_brand_risk_window: weighted_risk = sum(post_risk) / sum(exposure of scored posts)
    calm = [row(post_risk=0.1, exposure=1.0)] * 4
    crisis = [row(post_risk=0.9, exposure=1.0)] * 6
    # after calm + k crisis posts: (0.4 + 0.9k) / (4 + k) >= 0.45 first at k = 4 (index 7)
    assert bench.first_met("risk_threshold", calm + crisis, 0.45, 0, 0) == 7
    # the same stream with a floor of 10 mentions: met at the 10th (index 9)
    assert bench.first_met("risk_threshold", calm + crisis, 0.45, 10, 0) == 9
    # an unscored post adds its risk but no exposure
    assert bench.first_met("risk_threshold", [row(post_risk=0.5, exposure=9.0, is_scored=False),
                                              row(post_risk=0.0, exposure=2.0)], 0.25, 0, 0) == 1
    assert bench.first_met("risk_threshold", calm, 0.45, 0, 0) is None


def test_rules_without_a_known_condition_are_never_met():
    assert bench.first_met("no_data", [row()], 0.0, 0, 0) is None


def test_crises_follow_one_another():
    schedule = bench.crisis_schedule(["acme", " globex"], 40.0, 45.0)
    assert schedule == [(40.0, 85.0, "acme"), (85.0, 130.0, "globex")]
    assert [bench.crisis_brand_at(schedule, t) for t in (0, 39.9, 40, 84.9, 85, 129.9, 130)] == \
        [None, None, "acme", "acme", "globex", "globex", None]


@pytest.mark.parametrize("values, q, expected", [
    ([], 95, None),
    ([7.0], 95, 7.0),
    ([1.0, 2.0, 3.0, 4.0, 5.0], 50, 3.0),
    ([1.0, 2.0, 3.0, 4.0, 5.0], 95, 4.8),  # inclusive: within the samples' range
    ([10.0, 20.0], 95, 19.5),
])
def test_percentile(values, q, expected):
    assert bench.percentile(values, q) == expected
