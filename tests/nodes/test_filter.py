from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from nodes.filter import MAX_MATCH_INPUT_CHARS, NODE, FilterParams
from shared.nodes import Halt, NodeError
from tests.shared.nodes.local_http import make_ctx


async def _check(client: httpx.AsyncClient, left: Any, op: str, right: Any = None) -> bool:
    """Run a one-condition filter; True when it passed, False when it halted."""
    params = FilterParams.model_validate({"all": [{"left": left, "op": op, "right": right}]})
    output = await NODE.execute(make_ctx(client), params)
    if isinstance(output, Halt):
        assert output.output["passed"] is False
        return False
    assert output["passed"] is True
    return True


class TestParams:
    def test_needs_exactly_one_of_all_or_any(self):
        with pytest.raises(ValidationError, match="exactly one"):
            FilterParams.model_validate({})
        with pytest.raises(ValidationError, match="exactly one"):
            FilterParams.model_validate(
                {"all": [{"left": 1, "op": "eq"}], "any": [{"left": 1, "op": "eq"}]}
            )

    def test_unknown_op_refused(self):
        with pytest.raises(ValidationError):
            FilterParams.model_validate({"all": [{"left": 1, "op": "approx", "right": 1}]})

    def test_literal_invalid_regex_refused_at_save(self):
        with pytest.raises(ValidationError, match="invalid regular expression"):
            FilterParams.model_validate({"all": [{"left": "x", "op": "matches", "right": "("}]})

    def test_templated_regex_is_not_checked_at_save(self):
        FilterParams.model_validate({"all": [{"left": "x", "op": "matches", "right": "{{ p }}("}]})


class TestOps:
    @pytest.mark.parametrize(
        ("left", "op", "right", "expected"),
        [
            (1, "eq", 1, True),
            ("a", "eq", "b", False),
            ("150", "eq", 150, True),
            (True, "eq", "true", True),
            (1, "ne", 2, True),
            ("x", "ne", "x", False),
            (150, "gt", 100, True),
            ("150", "gt", 100, True),
            ("10", "gt", "9", True),
            (100, "gt", 100, False),
            (100, "gte", 100, True),
            (1.5, "lt", 2, True),
            ("b", "lt", "a", False),
            (2, "lte", 2, True),
            (None, "gt", 1, False),
            ("hello world", "contains", "world", True),
            (["a", "b"], "contains", "b", True),
            ([1, 2], "contains", "2", True),
            ({"k": 1}, "contains", "k", True),
            ("hello", "not_contains", "z", True),
            (["a"], "not_contains", "a", False),
            ("b", "in", ["a", "b"], True),
            ("3", "in", [1, 2, 3], True),
            ("ell", "in", "hello", True),
            ("z", "in", ["a"], False),
            ("", "exists", None, True),
            (None, "exists", None, False),
            (None, "not_exists", None, True),
            (0, "not_exists", None, False),
            ("order-123", "matches", r"^order-\d+$", True),
            ("ORDER", "matches", "^order", False),
            (404, "matches", "^4", True),
        ],
    )
    async def test_op(self, client, left, op, right, expected):
        assert await _check(client, left, op, right) is expected


class TestIncomparable:
    @pytest.mark.parametrize(
        ("left", "op", "right"),
        [
            ("abc", "gt", 1),
            ([1], "lt", 2),
            ({"a": 1}, "gte", {"a": 1}),
            (5, "contains", 5),
            ("a", "in", 5),
            ("abc", "contains", ["a"]),
            ({"a": 1}, "matches", "a"),
            ("a", "matches", 5),
        ],
    )
    async def test_incomparable_types_are_a_node_error(self, client, left, op, right):
        with pytest.raises(NodeError):
            await _check(client, left, op, right)

    async def test_error_message_names_the_types(self, client):
        with pytest.raises(NodeError, match="cannot compare str 'abc' with int 1 using 'gt'"):
            await _check(client, "abc", "gt", 1)

    async def test_huge_match_input_is_refused(self, client):
        with pytest.raises(NodeError, match="longer than"):
            await _check(client, "a" * (MAX_MATCH_INPUT_CHARS + 1), "matches", "a")

    async def test_huge_pattern_is_refused(self, client):
        with pytest.raises(NodeError, match="longer than"):
            await _check(client, "a", "matches", "{{ p }}" + "a" * 2000)

    async def test_invalid_rendered_pattern_is_a_node_error(self, client):
        with pytest.raises(NodeError, match="invalid regular expression"):
            await _check(client, "a", "matches", "{{ p }}(")


class TestOutcome:
    async def test_all_passes_when_every_condition_holds(self, client):
        params = FilterParams.model_validate(
            {"all": [{"left": 1, "op": "eq", "right": 1}, {"left": 2, "op": "gt", "right": 1}]}
        )
        assert await NODE.execute(make_ctx(client), params) == {
            "passed": True,
            "results": [True, True],
        }

    async def test_all_halts_when_one_fails(self, client):
        params = FilterParams.model_validate(
            {"all": [{"left": 1, "op": "eq", "right": 1}, {"left": 2, "op": "lt", "right": 1}]}
        )
        output = await NODE.execute(make_ctx(client), params)
        assert output == Halt(
            {"passed": False, "results": [True, False]}, "filter conditions not met"
        )

    async def test_any_passes_when_one_holds(self, client):
        params = FilterParams.model_validate(
            {"any": [{"left": 1, "op": "eq", "right": 2}, {"left": 2, "op": "gt", "right": 1}]}
        )
        assert await NODE.execute(make_ctx(client), params) == {
            "passed": True,
            "results": [False, True],
        }

    async def test_any_halts_when_none_holds(self, client):
        params = FilterParams.model_validate({"any": [{"left": 1, "op": "eq", "right": 2}]})
        assert isinstance(await NODE.execute(make_ctx(client), params), Halt)


class TestLinearTimeMatching:
    """`matches` uses RE2: no pattern can make a match backtrack for long."""

    @pytest.mark.parametrize(
        "pattern",
        [r"^(a+)+$", r"(a|aa)+$", r"(x+x+)+y", r"^(\w+\s?)*$"],
    )
    async def test_catastrophic_pattern_on_long_input_is_fast(self, client, pattern):
        subject = "a" * (MAX_MATCH_INPUT_CHARS - 1) + "!"
        started = time.perf_counter()
        assert await _check(client, subject, "matches", pattern) is False
        # Python's `re` needs longer than the age of the universe here; RE2 is linear.
        assert time.perf_counter() - started < 1.0

    @pytest.mark.parametrize(
        ("pattern", "reason"),
        [(r"(a)\1", "invalid escape sequence"), (r"(?=a)b", "invalid perl operator")],
    )
    def test_what_re2_cannot_do_is_refused_at_save_with_its_reason(self, pattern, reason):
        with pytest.raises(ValidationError, match=reason):
            FilterParams.model_validate({"all": [{"left": "x", "op": "matches", "right": pattern}]})

    def test_pattern_whose_automaton_is_too_big_is_refused_at_save(self):
        with pytest.raises(ValidationError, match="invalid regular expression"):
            FilterParams.model_validate(
                {"all": [{"left": "x", "op": "matches", "right": "((a{100}){100}){100}"}]}
            )
