"""Failed calls grouped into pattern deltas, with redacted examples."""

from tests import samples
from worker.calls.decode import to_call
from worker.calls.events import CallCompleted, CallFailed
from worker.failures.patterns import MAX_EXAMPLES, captured_request, pattern_deltas
from worker.failures.remedies import CATALOGUE, remedy_for
from worker.simulation.traffic import FAILURES


def failed(**overrides):
    return to_call(CallFailed.model_validate(samples.failed(**overrides)))


def test_failures_that_differ_in_variable_parts_form_one_pattern():
    calls = [
        failed(
            error_message=f"Request to api.openai.com timed out after {ms}ms (request_id=req_{i:012x})",
            model_id=model,
            layer=layer,
        )
        for i, (ms, model, layer) in enumerate(
            [(30000, "gpt-4o", "fast"), (60000, "o3", "deep"), (120000, "gpt-4o", "fast")] * 3
        )
    ]
    calls.append(to_call(CallCompleted.model_validate(samples.completed())))  # successes are not patterns
    deltas = pattern_deltas(calls)
    assert len(deltas) == 1
    d = next(iter(deltas.values()))
    assert d.occurrences == 9 and d.models == {"gpt-4o": 6, "o3": 3} and d.layers == {"fast": 6, "deep": 3}
    assert d.retryable == 9 and len(d.example_event_ids) == MAX_EXAMPLES
    assert d.first_event_id == calls[0].event_id


def test_category_defaults_from_the_catalogue():
    d = next(iter(pattern_deltas([failed(category=None, error_type="context_length")]).values()))
    assert d.fingerprint.category == "context"


def test_examples_are_redacted():
    call = failed(
        error_message="auth failed for key sk-proj-Ab3dEf6hIj9kLm2nOp5q",
        request={"headers": {"Authorization": "Bearer abcdefghijklmnopq"}, "prompt": "mail bob@example.com"},
    )
    d = next(iter(pattern_deltas([call]).values()))
    text = repr((d.example_message, d.example_request, d.fingerprint))
    assert "sk-proj" not in text and "abcdefghijklmnopq" not in text and "bob@example.com" not in text


def test_captured_requests_are_bounded():
    assert captured_request({"blob": "x" * 10_000})["blob"].endswith("...[8000 more characters]")
    assert captured_request({f"k{i}": "y" * 1500 for i in range(100)}) is None  # still too big: dropped
    assert captured_request(None) is None


def test_every_simulated_error_type_has_a_catalogued_remedy():
    assert set(FAILURES) <= set(CATALOGUE)
    assert remedy_for("never-seen").solution.startswith("No catalogued remedy")


def test_new_fingerprints_past_the_budget_fold_into_one_overflow_pattern_and_stay_counted():
    from worker.failures.patterns import OVERFLOW, fold_past_budget, pattern_deltas

    calls = [failed(error_type=f"kind_{i % 300}", category=f"cat_{i % 50}") for i in range(3000)]
    deltas = pattern_deltas(calls)
    assert len(deltas) == 300
    known = set(list(deltas)[:10])
    kept, folded = fold_past_budget(deltas, known, budget=20)
    assert len(kept) == 10 + 20 + 1 and OVERFLOW.digest in kept
    assert sum(d.occurrences for d in kept.values()) == 3000  # nothing dropped
    assert folded == kept[OVERFLOW.digest].occurrences == 3000 - 30 * 10
    assert all(k in kept for k in known)
    assert fold_past_budget(deltas, known, budget=1000) == (deltas, 0)
    nothing_left, _ = fold_past_budget(deltas, set(), budget=-5)
    assert list(nothing_left) == [OVERFLOW.digest]
