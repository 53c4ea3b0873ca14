"""Column arrays for the multi-row upserts: one row per key, sorted, values from the deltas."""

import orjson

from worker.calls import histogram
from worker.calls.decode import Call
from worker.flush.aggregate import aggregate
from worker.flush.rows import columns, latency_rows, latency_updates, minute_rows, model_rows, series_rows


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
    assert not any(r[0].startswith("latency_") for r in rows)
    placeholders = list(zip(*latency_rows(deltas)))
    assert len(placeholders) == 3 * 3  # three percentiles for fast, deep and all
    assert {r[0] for r in placeholders if r[6] is None} == {"latency_p95_ms", "latency_p99_ms"}
    # the store reads the stored histograms back; the percentiles come from their sum with the flush's
    minute = deltas_minute = next(iter(deltas.by_layer_minute))[0]
    stored = {(deltas_minute, "layer=all"): histogram.from_values([500.0, 700.0])}
    names, minutes, keys, values, hists = latency_updates(deltas, stored)
    both = histogram.from_values([100, 300, 500, 700])
    for q, name in ((0.5, "latency_p50_ms"), (0.99, "latency_p99_ms")):
        at = next(i for i, n in enumerate(names) if n == name and keys[i] == "layer=all")
        assert minutes[at] == minute and values[at] == histogram.quantile(both, q)
    assert [h is not None for n, h in zip(names, hists, strict=True) if n == "latency_p50_ms"] == [True] * 3
    worker = {r[0]: r[1] for r in rows if r[5] == "worker:grp"}
    assert worker == {"events_consumed": 2.0, "events_dead_lettered": 1.0}
    keys = [(r[0], r[4], r[5]) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_columns_transposes():
    assert columns([(1, "a"), (2, "b")], 2) == [[1, 2], ["a", "b"]]
