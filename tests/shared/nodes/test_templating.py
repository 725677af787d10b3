from __future__ import annotations

from typing import Any

import pytest

from shared.nodes import TemplateError, check_syntax, render

CONTEXT: dict[str, Any] = {
    "trigger": {
        "body": {"amount": 150, "id": "ord_1", "ok": True, "items": [1, 2], "name": None},
        "headers": {"x-source": "shop"},
        "query": {},
        "method": "POST",
        "received_at": "2026-01-01T00:00:00Z",
    },
    "steps": {"fetch": {"status": 200, "body": {"user": {"email": "a@example.org"}}}},
    "run": {"id": "run-1", "workflow_id": "wf-1", "attempt": 1},
}


class TestTypeKeeping:
    def test_whole_expression_keeps_int(self):
        assert render("{{ trigger.body.amount }}", CONTEXT) == 150

    def test_whole_expression_with_surrounding_whitespace_keeps_type(self):
        assert render("  {{ trigger.body.amount * 2 }} ", CONTEXT) == 300

    def test_whole_expression_keeps_bool_list_and_dict(self):
        assert render("{{ trigger.body.ok }}", CONTEXT) is True
        assert render("{{ trigger.body.items }}", CONTEXT) == [1, 2]
        assert render("{{ steps.fetch.body.user }}", CONTEXT) == {"email": "a@example.org"}

    def test_mixed_string_renders_text(self):
        assert render("order {{ trigger.body.id }}: {{ trigger.body.amount }}", CONTEXT) == (
            "order ord_1: 150"
        )

    def test_two_expressions_are_a_string_not_one_expression(self):
        assert render("{{ trigger.body.amount }}{{ trigger.body.amount }}", CONTEXT) == "150150"

    def test_objects_inside_strings_render_as_json(self):
        assert render("u={{ steps.fetch.body.user }}", CONTEXT) == 'u={"email": "a@example.org"}'

    def test_walks_nested_dicts_and_lists(self):
        value = {"a": ["{{ run.attempt }}", {"b": "{{ trigger.method }}"}], "n": 5}
        assert render(value, CONTEXT) == {"a": [1, {"b": "POST"}], "n": 5}

    def test_plain_strings_are_returned_unchanged(self):
        assert render("no template {here}", CONTEXT) == "no template {here}"

    def test_statement_blocks_render(self):
        source = "{% if trigger.body.amount > 100 %}big{% else %}small{% endif %}"
        assert render(source, CONTEXT) == "big"

    def test_payload_field_wins_over_dict_method(self):
        assert render("{{ trigger.body.items }}", CONTEXT) == [1, 2]


class TestMissingValues:
    def test_missing_whole_expression_is_none(self):
        assert render("{{ trigger.body.nope }}", CONTEXT) is None

    def test_missing_chain_is_safe(self):
        assert render("{{ trigger.body.nope.deeper.still }}", CONTEXT) is None

    def test_missing_inside_string_is_empty(self):
        assert render("x={{ steps.absent.body.id }}!", CONTEXT) == "x=!"

    def test_none_inside_string_is_empty(self):
        assert render("name={{ trigger.body.name }}", CONTEXT) == "name="

    def test_missing_in_arithmetic_raises_template_error(self):
        with pytest.raises(TemplateError):
            render("{{ trigger.body.nope + 1 }}", CONTEXT)


class TestSandbox:
    @pytest.mark.parametrize(
        "source",
        [
            "{{ ''.__class__ }}",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "x {{ trigger.__class__ }}",
            "{{ lipsum.__globals__ }}",
            "{{ cycler.__init__.__globals__.os }}",
        ],
    )
    def test_escape_attempt_raises(self, source):
        with pytest.raises(TemplateError, match="sandbox"):
            render(source, CONTEXT)

    def test_context_cannot_be_mutated(self):
        with pytest.raises(TemplateError):
            render("{{ trigger.body.items.append(3) }}", CONTEXT)
        assert CONTEXT["trigger"]["body"]["items"] == [1, 2]

    def test_huge_repetition_refused(self):
        with pytest.raises(TemplateError, match="repetition"):
            render("{{ 'a' * 100000000 }}", CONTEXT)

    def test_huge_power_refused(self):
        with pytest.raises(TemplateError, match="exponent"):
            render("{{ 10 ** 100000 }}", CONTEXT)


class TestSyntax:
    def test_render_of_bad_syntax_raises_template_error(self):
        with pytest.raises(TemplateError, match="syntax"):
            render("{{ trigger.body.amount ", CONTEXT)

    def test_check_syntax_reports_paths(self):
        value = {"url": "https://x/{{ a b }}", "json": {"list": ["ok", "{% if %}"]}}
        paths = [path for path, _ in check_syntax(value)]
        assert paths == ["url", "json.list.1"]

    def test_check_syntax_message_comes_from_jinja(self):
        [(_, message)] = check_syntax({"x": "{{ a b }}"})
        assert "syntax error" in message

    def test_check_syntax_accepts_valid_templates(self):
        assert (
            check_syntax({"a": "{{ x | default(1) }}", "b": ["{% for i in y %}{% endfor %}"]}) == []
        )
