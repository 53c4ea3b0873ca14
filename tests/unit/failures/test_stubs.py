"""Generated stubs parse in their language and carry the captured data exactly, whatever it holds.

TypeScript is checked with the TypeScript compiler's own parser (tests/typescript, installed from
the npm registry by `make install`), Python with `ast`.
"""

from __future__ import annotations

import ast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.typescript_parser import TypeScriptParser
from worker.failures.stubs import StubSpec, render_pytest, render_vitest, stub_name

HOSTILE = [
    "`",
    "${process.exit(1)}",
    '"',
    "'",
    "'''",
    '"""',
    "\n",
    "\r\n",
    "\u2028",
    "\u2029",
    "</script>",
    "\x00",
    "*/",
    "//",
    "\\",
    "\\u0000",
    "#{x}",
    "{{x}}",
    "__proto__",
]

text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=40),
    st.lists(st.sampled_from(HOSTILE) | st.text(max_size=5), max_size=6).map("".join),
)
json_data = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=15,
)
specs = st.builds(
    StubSpec,
    fingerprint=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    error_type=text.filter(bool),
    category=text,
    template=text,
    expected_behavior=text,
    request=st.one_of(st.none(), st.dictionaries(text, json_data, max_size=5)),
)


@pytest.fixture(scope="module")
def typescript():
    parser = TypeScriptParser()
    yield parser
    parser.close()


def as_js(value):
    """The value as a JavaScript runtime holds it: every number a double (ints here are within 2**53)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {k: as_js(v) for k, v in value.items()}
    return [as_js(v) for v in value]


@given(specs)
def test_vitest_stubs_parse_and_round_trip(typescript, spec):
    answer = typescript.parse(render_vitest(spec))
    assert answer["diagnostics"] == []
    assert answer["values"]["pattern"] == spec.pattern
    assert answer["values"]["expectedBehavior"] == spec.expected_behavior
    if spec.request is None:
        assert "request" not in answer["values"]
    else:
        assert as_js(answer["values"]["request"]) == as_js(spec.request)
    assert answer["calls"] == ["describe"]


def _assigned(tree: ast.Module) -> dict:
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}


@given(specs)
def test_pytest_stubs_parse_and_round_trip(spec):
    tree = ast.parse(render_pytest(spec))
    values = _assigned(tree)
    assert values == {"PATTERN": spec.pattern, "EXPECTED_BEHAVIOR": spec.expected_behavior, "REQUEST": spec.request}
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert functions == [f"test_{spec.test_name}"]


@given(st.text(max_size=60), st.text(alphabet="0123456789abcdef", min_size=16, max_size=16))
def test_names_are_identifiers_in_both_languages(error_type, digest):
    name = stub_name(error_type, digest)
    assert name.isidentifier() and name.isascii() and name.endswith(digest)


def test_a_malformed_fingerprint_is_refused():
    with pytest.raises(ValueError):
        stub_name("timeout", "not-hex-at-all!")


def test_stub_expresses_the_expected_behaviour_and_replays_the_request(typescript):
    spec = StubSpec(
        "0123456789abcdef",
        "timeout",
        "routing",
        "timed out after <duration>",
        "The gateway retries up to 2 times, then falls back to a faster layer.",
        {"messages": [{"role": "user", "content": "hi"}]},
    )
    code = render_vitest(spec)
    assert "await check(pattern, request, expectedBehavior, context);" in code
    assert typescript.parse(code)["values"]["expectedBehavior"].startswith("The gateway retries")
