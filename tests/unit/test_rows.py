"""Column arrays for the multi-row upserts: one row per key, sorted, values from the deltas."""

import orjson

from worker.calls import histogram
from worker.calls.aggregate import aggregate
from worker.calls.decode import Call
from worker.calls.rows import columns, minute_rows, model_rows, series_rows


def call(model, task, ok, latency, at=1_700_000_000.0, layer="fast"):
    return Call("id", at, model, task, layer, ok, latency, 0.01, 10, 5)


def test_model_rows_are_sorted_and_summed():
    deltas = aggregate([call("b", "chat", True, 10), call("a", "chat", False, 20), call("b", "chat", False, 30)])
    cols = model_rows(deltas)
    assert cols[0] == ["a", "b"] and cols[2] == [1, 2] and cols[3] == [0, 1]
    assert histogram.from_json_keys(orjson.loads(cols[8][1])) == histogram.from_values([10, 30])


def test_minute_rows_split_by_minute_and_layer():
    deltas = aggregate([call("a", "chat", True, 1, at=0.0), call("a", "chat", True, 1, at=61.0, layer="deep")])
    cols = minute_rows(deltas)
    assert cols[0] == [0, 60] and cols[3] == ["fast", "deep"]


def test_series_rows_cover_each_layer_and_all_and_the_worker_counts():
    deltas = aggregate([call("a", "chat", True, 100), call("a", "chat", False, 300, layer="deep")])
    cols = series_rows(deltas, {"events_consumed": 2, "events_dead_lettered": 1}, 1_700_000_000 // 60 * 60, "grp")
    rows = list(zip(*cols))
    calls = {r[5]: r[1] for r in rows if r[0] == "calls"}
    assert calls == {"layer=all": 2.0, "layer=deep": 1.0, "layer=fast": 1.0}
    errors = {r[5]: r[1] for r in rows if r[0] == "errors"}
    assert errors == {"layer=all": 1.0, "layer=deep": 1.0, "layer=fast": 0.0}
    p50_all = next(r for r in rows if r[0] == "latency_p50_ms" and r[5] == "layer=all")
    assert p50_all[7] == 0.5 and p50_all[1] == histogram.quantile(histogram.from_values([100, 300]), 0.5)
    worker = {r[0]: r[1] for r in rows if r[5] == "worker:grp"}
    assert worker == {"events_consumed": 2.0, "events_dead_lettered": 1.0}
    keys = [(r[0], r[4], r[5]) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_columns_transposes():
    assert columns([(1, "a"), (2, "b")], 2) == [[1, 2], ["a", "b"]]
