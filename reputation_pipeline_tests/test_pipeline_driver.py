"""Pure parts of the headless driver."""
from reputation_pipeline.pipeline.driver import contiguous_ranges


def test_touched_hours_group_into_contiguous_ranges():
    hours = {"2026-11-26-03:00", "2026-11-26-04:00", "2026-11-26-06:00", "2026-11-20-01:00"}
    assert contiguous_ranges(hours) == [("2026-11-20-01:00", "2026-11-20-01:00"),
                                        ("2026-11-26-03:00", "2026-11-26-06:00")]
    assert contiguous_ranges(hours, max_gap_hours=1) == [("2026-11-20-01:00", "2026-11-20-01:00"),
                                                         ("2026-11-26-03:00", "2026-11-26-04:00"),
                                                         ("2026-11-26-06:00", "2026-11-26-06:00")]
    assert contiguous_ranges({"2026-12-31-23:00", "2027-01-01-00:00"}) == [("2026-12-31-23:00", "2027-01-01-00:00")]
