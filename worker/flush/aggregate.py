"""Calls -> Deltas by vectorised grouping: Python works per batch and per group, never per call.

The batch is turned into columns once (a transposition at C speed); each table's key becomes one
integer per call, `numpy.unique` groups them, and `bincount` / `add.at` / `minimum.at` sum every
group at once. Histogram buckets are computed for the whole latency column. Only the groups (a few
hundred per flush) are visited in Python, to build the Tally each table row is written from.

The finest key of a call at or after `recent_from` is its second (the 1-second health buckets the
fast path reads); an older call's is its minute: on a backlog hours deep, per-second keys would
multiply the rows by 60 for buckets no breaker ever reads again (see HEALTH_RECENT_S).

Counts, token sums and histograms equal a per-call loop's exactly; float sums agree to rounding (the
order of additions differs). A property test holds the two to that (tests/unit/flush).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress, repeat
from operator import is_not

import numpy as np

from worker.calls import histogram
from worker.calls.decode import Call
from worker.experiments.tally import ArmTally, utility_of
from worker.flush.deltas import ALL_LAYERS, HEALTH_BUCKET_S, Deltas, Tally
from worker.routing.counterfactual import MIN_PROPENSITY, LoggedTally

_F = Call._fields
_AT, _MODEL, _TASK, _LAYER, _OK = (_F.index(n) for n in ("occurred_at", "model_id", "task_type", "layer", "ok"))
_LATENCY, _COST, _IN, _OUT = (_F.index(n) for n in ("latency_ms", "cost_usd", "input_tokens", "output_tokens"))
_EXPERIMENT, _ARM, _P = (_F.index(n) for n in ("experiment_id", "arm", "route_probability"))


def _codes(keys: list) -> tuple[np.ndarray, list]:
    """Each key's index among the distinct keys (in order of first appearance), and those keys:
    hashing in C (dict.fromkeys, map), no Python code per call."""
    distinct = list(dict.fromkeys(keys))
    index = {key: i for i, key in enumerate(distinct)}
    return np.fromiter(map(index.__getitem__, keys), np.int64, len(keys)), distinct


class _Columns:
    """The batch's calls as arrays (numbers) and integer codes (strings)."""

    def __init__(self, calls: Sequence[Call]):
        cols = list(zip(*calls, strict=True))
        self.n = len(calls)
        self.at = np.array(cols[_AT], dtype=np.float64)
        self.ok = np.array(cols[_OK], dtype=np.int64)
        self.latency = np.array(cols[_LATENCY], dtype=np.float64)
        self.cost = np.array(cols[_COST], dtype=np.float64)
        self.tokens_in = np.array(cols[_IN], dtype=np.int64)
        self.tokens_out = np.array(cols[_OUT], dtype=np.int64)
        self.bucket = histogram.buckets_of(self.latency)
        self.cols = cols
        self.series, self.series_keys = _codes(list(zip(cols[_MODEL], cols[_TASK], cols[_LAYER], strict=True)))
        self.minute = (self.at // 60.0).astype(np.int64) * 60  # Python's // on floats, as minute_of


def _not_none(column: tuple) -> np.ndarray:
    return np.fromiter(map(is_not, column, repeat(None)), bool, len(column))


def _split(sorted_groups: np.ndarray, n_groups: int) -> list[int]:
    """Start of each group's run in an array sorted by group, and the end: n_groups + 1 bounds."""
    return np.searchsorted(sorted_groups, np.arange(n_groups + 1)).tolist()


def _histograms(groups: np.ndarray, n_groups: int, buckets: np.ndarray) -> list[histogram.Histogram]:
    low = int(buckets.min())
    span = int(buckets.max()) - low + 1
    pairs, counts = np.unique(groups * span + (buckets - low), return_counts=True)
    of_group = pairs // span
    keys = (pairs % span + low).tolist()
    tallies = counts.tolist()
    bounds = _split(of_group, n_groups)
    return [dict(zip(keys[a:b], tallies[a:b], strict=True)) for a, b in zip(bounds, bounds[1:], strict=False)]


def _tallies(c: _Columns, key: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, list[Tally]]:
    """One Tally per distinct `key` (over `rows` of the batch, or all of it), and the distinct keys sorted."""
    pick = (lambda a: a) if rows is None else (lambda a: a[rows])
    distinct, groups = np.unique(key, return_inverse=True)
    n = len(distinct)
    calls = np.bincount(groups, minlength=n).tolist()
    successes = np.bincount(groups, weights=pick(c.ok), minlength=n).astype(np.int64).tolist()
    latency = np.bincount(groups, weights=pick(c.latency), minlength=n).tolist()
    cost = np.bincount(groups, weights=pick(c.cost), minlength=n).tolist()
    tokens_in, tokens_out = np.zeros(n, np.int64), np.zeros(n, np.int64)
    np.add.at(tokens_in, groups, pick(c.tokens_in))
    np.add.at(tokens_out, groups, pick(c.tokens_out))
    first, last = np.full(n, np.inf), np.full(n, -np.inf)
    at = pick(c.at)
    np.minimum.at(first, groups, at)
    np.maximum.at(last, groups, at)
    hists = _histograms(groups, n, pick(c.bucket))
    tallies = [
        Tally(*row)
        for row in zip(
            calls, successes, latency, cost, tokens_in.tolist(), tokens_out.tolist(), hists, first.tolist(),
            last.tolist(), strict=True,
        )
    ]  # fmt: skip
    return distinct, tallies


def aggregate(calls: Sequence[Call], recent_from: float = float("-inf")) -> Deltas:
    """The additive deltas of `calls`: health (finest), minute, model and layer-minute tallies, and the
    sums of the calls an experiment tagged or a router logged a propensity for."""
    deltas = Deltas()
    if not calls:
        return deltas
    c = _Columns(calls)
    n_series = len(c.series_keys)
    recent = np.flatnonzero(c.at >= recent_from)
    if len(recent):
        second = (c.at[recent] // HEALTH_BUCKET_S).astype(np.int64) * HEALTH_BUCKET_S
        seconds, second_code = np.unique(second, return_inverse=True)
        second_list = seconds.tolist()
        keys, tallies = _tallies(c, second_code * n_series + c.series[recent], recent)
        for key, tally in zip(keys.tolist(), tallies, strict=True):
            deltas.by_health[(second_list[key // n_series], *c.series_keys[key % n_series])] = tally
    minutes, minute_code = np.unique(c.minute, return_inverse=True)
    minute_list = minutes.tolist()
    keys, tallies = _tallies(c, minute_code * n_series + c.series)
    for key, tally in zip(keys.tolist(), tallies, strict=True):
        deltas.by_minute[(minute_list[key // n_series], *c.series_keys[key % n_series])] = tally
    # (model, task type) and layer codes per series, then per call by lookup: no second pass over the strings
    pair_of_series, pair_keys = _codes([(model, task) for model, task, _ in c.series_keys])
    keys, tallies = _tallies(c, pair_of_series[c.series])
    deltas.by_model = {pair_keys[key]: tally for key, tally in zip(keys.tolist(), tallies, strict=True)}
    layer_of_series, layer_keys = _codes([layer for _, _, layer in c.series_keys])
    layers = layer_of_series[c.series]
    n_layers = len(layer_keys)
    keys, tallies = _tallies(c, minute_code * (n_layers + 1) + layers)
    for key, tally in zip(keys.tolist(), tallies, strict=True):
        deltas.by_layer_minute[(minute_list[key // (n_layers + 1)], layer_keys[key % (n_layers + 1)])] = tally
    keys, tallies = _tallies(c, minute_code)
    for key, tally in zip(keys.tolist(), tallies, strict=True):
        deltas.by_layer_minute[(minute_list[key], ALL_LAYERS)] = tally
    deltas.by_arm = _arms(c)
    deltas.by_logged = _logged(c, minute_list, minute_code)
    return deltas


def _arms(c: _Columns) -> dict[tuple[str, str], ArmTally]:
    if c.cols[_ARM].count(None) == c.n:  # no experiment running: one C-level pass, nothing more
        return {}
    tagged = (_not_none(c.cols[_EXPERIMENT]) & _not_none(c.cols[_ARM])).tolist()
    rows = np.flatnonzero(tagged)
    if not len(rows):
        return {}
    groups, arm_keys = _codes(list(compress(zip(c.cols[_EXPERIMENT], c.cols[_ARM], strict=True), tagged)))
    n = len(arm_keys)
    ok, latency, cost = c.ok[rows], c.latency[rows], c.cost[rows]
    utility = utility_of(ok, latency, cost)
    sums = (
        np.bincount(groups, minlength=n).tolist(),
        np.bincount(groups, weights=ok, minlength=n).astype(np.int64).tolist(),
        np.bincount(groups, weights=cost, minlength=n).tolist(),
        np.bincount(groups, weights=cost * cost, minlength=n).tolist(),
        np.bincount(groups, weights=utility, minlength=n).tolist(),
        np.bincount(groups, weights=utility * utility, minlength=n).tolist(),
        _histograms(groups, n, c.bucket[rows]),
    )
    return {key: ArmTally(*row) for key, row in zip(arm_keys, zip(*sums, strict=True), strict=True)}


def _logged(c: _Columns, minutes: list[int], minute_code: np.ndarray) -> dict[tuple[str, int, str], LoggedTally]:
    if c.cols[_P].count(None) == c.n:  # no router logs propensities
        return {}
    logged = _not_none(c.cols[_P]).tolist()
    rows = np.flatnonzero(logged)
    p = np.array(list(compress(c.cols[_P], logged)), dtype=np.float64)
    cells, cell_keys = _codes(
        list(zip(compress(c.cols[_TASK], logged), minute_code[rows].tolist(), compress(c.cols[_MODEL], logged)))
    )
    n = len(cell_keys)
    usable = (p >= MIN_PROPENSITY) & (p <= 1.0)
    w = np.where(usable, 1.0 / np.where(usable, p, 1.0), 0.0)
    w2 = w * w
    ok, cost = c.ok[rows].astype(bool) & usable, np.where(usable, c.cost[rows], 0.0)

    def total(weights: np.ndarray) -> list[float]:
        return np.bincount(cells, weights=weights, minlength=n).tolist()

    sums = (
        np.bincount(cells, weights=usable, minlength=n).astype(np.int64).tolist(),
        np.bincount(cells, weights=~usable, minlength=n).astype(np.int64).tolist(),
        total(w),
        total(w2),
        total(np.where(ok, w, 0.0)),
        total(np.where(ok, w2, 0.0)),
        total(cost * w),
        total(cost * w2),
        total(cost * cost * w2),
    )
    return {
        (task, minutes[code], model): LoggedTally(*row)
        for (task, code, model), row in zip(cell_keys, zip(*sums, strict=True), strict=True)
    }
