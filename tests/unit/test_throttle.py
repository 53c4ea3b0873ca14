from worker.throttle import Repeats


def test_a_burst_passes_then_lines_are_held_back_and_counted_on_the_next_window():
    repeats = Repeats(burst=3, window_s=10.0)
    verdicts = [repeats.allow("broker down", now=100.0 + i * 0.01) for i in range(50)]
    assert verdicts[:3] == [0, 0, 0] and verdicts[3:] == [None] * 47
    assert repeats.allow("broker down", now=110.5) == 47  # the first line of the next window reports them
    assert repeats.allow("broker down", now=110.6) == 0


def test_kinds_are_limited_apart_and_their_number_is_bounded():
    repeats = Repeats(burst=1, window_s=10.0, kinds=100)
    assert repeats.allow("a", now=0.0) == 0 and repeats.allow("b", now=0.0) == 0
    assert repeats.allow("a", now=0.1) is None and repeats.allow("b", now=0.1) is None
    for i in range(1000):
        repeats.allow(f"kind {i}", now=1.0 + i)
    assert len(repeats._seen) <= 100
