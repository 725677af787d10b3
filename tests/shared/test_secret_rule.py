"""The rule for secrets: read only where http_request sends them, and only untransformed."""

from __future__ import annotations

from typing import Any

import pytest

from shared.credentials import mask_secret_fields, secret_use_issues


@pytest.mark.parametrize(
    "params",
    [
        {"url": "https://x.example/{{ secrets.k }}"},
        {"url": "https://x.example/", "headers": {"Authorization": "Bearer {{ secrets.k }}"}},
        {"url": "https://x.example/", "query": {"key": "{{ secrets['k'] }}"}},
        {"url": "https://x.example/", "json": {"a": [{"b": "{{secrets.k}}"}]}},
        {"url": "https://x.example/", "body": "{{ secrets.user }}:{{ secrets.k }}"},
    ],
)
def test_bare_uses_in_what_a_request_sends_are_allowed(params: dict[str, Any]) -> None:
    assert secret_use_issues("http_request", params) == []


@pytest.mark.parametrize(
    "template",
    [
        "{{ secrets.k | reverse }}",
        "{{ secrets.k | upper }}",
        "{{ secrets.k[1:] }}",
        "{{ secrets.k[0] }}",
        "{{ secrets.k | list }}",
        "{{ secrets.k.upper() }}",
        "{{ secrets.k ~ 'x' }}",
        "{{ 'a' if secrets.k == 'b' else 'c' }}",
        "{% if secrets.k > 'm' %}high{% endif %}",
        "{% for c in secrets.k %}{{ c }}{% endfor %}",
        "{{ secrets.k is string }}",
    ],
)
def test_any_transformation_is_refused(template: str) -> None:
    issues = secret_use_issues("http_request", {"url": "https://x.example/", "body": template})
    assert [field for field, _ in issues] == ["body"]
    assert "itself" in issues[0][1]


@pytest.mark.parametrize(
    ("node_type", "params", "field"),
    [
        ("log", {"message": "{{ secrets.k }}"}, "message"),
        ("transform", {"values": {"v": "{{ secrets.k }}"}}, "values.v"),
        ("switch", {"cases": [{"when": "{{ secrets.k == 'a' }}"}]}, "cases.0.when"),
        (
            "http_request",
            {"url": "https://x.example/", "timeout_s": "{{ secrets.k }}"},
            "timeout_s",
        ),
    ],
)
def test_secrets_elsewhere_are_refused(node_type: str, params: dict[str, Any], field: str) -> None:
    [(where, message)] = secret_use_issues(node_type, params)
    assert where == field
    assert "only where http_request sends them" in message


def test_recorded_fields_that_read_a_secret_are_redacted_whole() -> None:
    params = {
        "url": "https://x.example/{{ trigger.body.id }}?k={{ secrets.k }}",
        "headers": {"X-Id": "{{ trigger.body.id }}"},
        "body": "{{ secrets.a }} {{ secrets.b }}",
    }
    assert mask_secret_fields(params) == {
        "url": "[credential k]",
        "headers": {"X-Id": "{{ trigger.body.id }}"},
        "body": "[credential a], [credential b]",
    }
