"""`check_json`: the one judge of what a JSON request body may carry."""

from __future__ import annotations

import pytest

from shared.jsonbody import check_json


class TestCheckJson:
    @pytest.mark.parametrize(
        "raw",
        [
            b'{"a": 1, "b": [1.5, "x", null, true]}',
            b"18446744073709551615",
            b"-9223372036854775808",
            b'"\\\\u0000"',  # an escaped backslash, then the text u0000
            b"not json at all",  # the route's own parser reports it
            b"\xff\xfe",
        ],
    )
    def test_accepts(self, raw: bytes) -> None:
        assert check_json(raw) is None

    @pytest.mark.parametrize(
        ("raw", "words"),
        [
            (b"[NaN]", "NaN"),
            (b'{"a": -Infinity}', "-Infinity"),
            (b"1e400", "out of range"),
            (b"18446744073709551616", "64 bits"),
            (b"-9223372036854775809", "64 bits"),
            (b"1" * 10_000, "64 bits"),
            (b'{"a\\u0000": 1}', "NUL"),
            (b'["ok", {"b": "x\\u0000y"}]', "NUL"),
            (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        ],
    )
    def test_refuses_naming_the_problem(self, raw: bytes, words: str) -> None:
        problem = check_json(raw)
        assert problem is not None
        assert words in problem
