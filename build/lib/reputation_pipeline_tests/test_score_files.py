"""ScoreFileIndex: each score file of an hour read once per process (pure, no lake)."""
import pyarrow as pa

from reputation_pipeline.scoring.score_files import ScoreFileIndex


def _table(ids, bad=0):
    return pa.table({"post_id": ids, "bad": [1] * bad + [0] * (len(ids) - bad)})


def _validate(t: pa.Table) -> dict[str, int]:
    return {"bad_rows": sum(t.column("bad").to_pylist())}


def test_post_ids_read_each_file_once_and_follow_new_files():
    files = {"a": ["p1", "p2"], "b": ["p3"]}
    reads: list[str] = []

    def read_ids(key):
        reads.append(key)
        return files[key]

    idx = ScoreFileIndex()
    assert idx.post_ids("lake/h1", ["a", "b"], read_ids) == {"p1", "p2", "p3"}
    files["c"] = ["p4", None]
    assert idx.post_ids("lake/h1", ["a", "b", "c"], read_ids) == {"p1", "p2", "p3", "p4"}
    assert reads == ["a", "b", "c"]  # a and b were not read again
    # a file written by this process is known without reading it
    idx.wrote("lake/h1", ["a", "b", "c"], "d", _table(["p5"]), _validate)
    assert "p5" in idx.post_ids("lake/h1", ["a", "b", "c", "d"], read_ids) and reads == ["a", "b", "c"]


def test_validity_sums_files_and_counts_duplicates_across_them():
    tables = {"a": _table(["p1", "p2"]), "b": _table(["p2", "p3"], bad=1)}
    reads: list[str] = []

    def read(key):
        reads.append(key)
        return tables[key]

    idx = ScoreFileIndex()
    # ids known from the scoring step; validity still reads each file once for its counts
    idx.post_ids("h", ["a"], lambda k: tables[k].column("post_id").to_pylist())
    rows, counts = idx.validity("h", ["a", "b"], read, _validate)
    assert rows == 4 and counts == {"bad_rows": 1, "duplicate_post_ids": 1}
    assert idx.validity("h", ["a", "b"], read, _validate) == (rows, counts)
    assert sorted(reads) == ["a", "b"]


def test_a_file_that_disappears_resets_the_hour():
    tables = {"a": _table(["p1"]), "b": _table(["p1"])}
    idx = ScoreFileIndex()
    assert idx.validity("h", ["a", "b"], tables.get, _validate)[1]["duplicate_post_ids"] == 1
    del tables["b"]  # an operator removed it
    assert idx.validity("h", ["a"], tables.get, _validate) == (1, {"bad_rows": 0, "duplicate_post_ids": 0})


def test_hours_are_evicted_oldest_first():
    idx = ScoreFileIndex(max_hours=2)
    reads: list[str] = []

    def read_ids(key):
        reads.append(key)
        return [key]

    for hour in ("h1", "h2", "h3"):
        idx.post_ids(hour, [f"{hour}/a"], read_ids)
    idx.post_ids("h1", ["h1/a"], read_ids)  # evicted: read again
    idx.post_ids("h3", ["h3/a"], read_ids)  # kept
    assert reads == ["h1/a", "h2/a", "h3/a", "h1/a"]
