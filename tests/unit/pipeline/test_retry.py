"""One verdict per failure, and the back-off it starts."""

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError

from worker.pipeline.retry import Backoff, Verdict, classify
from worker.store.flush import OffsetFenced


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (OffsetFenced({("t", 0): (5, 9)}), Verdict.fenced),
        (asyncpg.NumericValueOutOfRangeError("out of range"), Verdict.refused),
        (asyncpg.CheckViolationError("check"), Verdict.refused),
        (asyncpg.CannotConnectNowError("starting up"), Verdict.transient),
        (asyncpg.InterfaceError("closed"), Verdict.transient),
        (ConnectionRefusedError(), Verdict.transient),
        (TimeoutError(), Verdict.transient),
        (KafkaConnectionError(), Verdict.transient),
        (KeyError("a bug"), Verdict.fatal),
    ],
)
def test_each_failure_has_one_verdict(error, verdict):
    assert classify(error) is verdict


def test_backoff_doubles_up_to_its_bound_and_resets():
    backoff = Backoff(max_s=3.0)
    assert not backoff.active and backoff.wait_ms(0.0) == 0
    delays = [backoff.failed(100.0) for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.active and not backoff.due(102.9) and backoff.due(103.0)
    assert backoff.wait_ms(101.5) == 1500
    assert backoff.reset() == 5
    assert not backoff.active and backoff.failures == 0
