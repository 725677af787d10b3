from __future__ import annotations

import pytest

from shared.nodes import Issue, issues_to_detail, load_registry, validate_nodes


@pytest.fixture(scope="module")
def registry():
    return load_registry()


VALID = [
    {
        "id": "only_big",
        "type": "filter",
        "params": {"all": [{"left": "{{ trigger.body.amount }}", "op": "gt", "right": 100}]},
    },
    {
        "id": "post",
        "type": "http_request",
        "params": {
            "method": "POST",
            "url": "https://example.org/hook",
            "json": {"order": "{{ trigger.body.id }}"},
        },
        "retry": {"max": 3, "backoff": 2},
        "timeout_s": 30,
        "continue_on_fail": True,
    },
    {"id": "wait", "type": "delay", "params": {"seconds": 0}},
    {"id": "shape", "type": "transform", "params": {"values": {"a": "{{ steps.post.body }}"}}},
    {"id": "note", "type": "log", "params": {"message": "done {{ run.id }}"}},
]


def _fields(issues: list[Issue]) -> set[tuple[str | None, str]]:
    return {(issue.node, issue.field) for issue in issues}


class TestValid:
    def test_valid_definition_has_no_issues(self, registry):
        assert validate_nodes(VALID, registry) == []

    def test_empty_list_is_valid(self, registry):
        assert validate_nodes([], registry) == []


class TestShape:
    def test_nodes_must_be_a_list(self, registry):
        assert validate_nodes({"id": "x"}, registry) == [Issue(None, "", "nodes must be a list")]

    def test_at_most_100_nodes(self, registry):
        nodes = [{"id": f"n{i}", "type": "log", "params": {"message": "x"}} for i in range(101)]
        [issue] = validate_nodes(nodes, registry)
        assert issue.node is None
        assert "100" in issue.message

    def test_node_must_be_an_object(self, registry):
        assert _fields(validate_nodes(["log"], registry)) == {("nodes[0]", "")}

    def test_missing_id_names_the_index(self, registry):
        issues = validate_nodes([{"type": "log", "params": {"message": "x"}}], registry)
        assert _fields(issues) == {("nodes[0]", "id")}

    def test_bad_id_names_the_index(self, registry):
        issues = validate_nodes(
            [{"id": "has-dash", "type": "log", "params": {"message": "x"}}], registry
        )
        assert _fields(issues) == {("nodes[0]", "id")}
        assert "pattern" in issues[0].message

    def test_extra_key_is_refused(self, registry):
        issues = validate_nodes(
            [{"id": "a", "type": "log", "params": {"message": "x"}, "colour": 1}], registry
        )
        assert _fields(issues) == {("a", "colour")}

    def test_duplicate_ids(self, registry):
        node = {"id": "a", "type": "log", "params": {"message": "x"}}
        [issue] = validate_nodes([node, node], registry)
        assert (issue.node, issue.field) == ("a", "id")
        assert "nodes[0] and nodes[1]" in issue.message

    def test_unknown_type_lists_known_types(self, registry):
        [issue] = validate_nodes([{"id": "a", "type": "slack", "params": {}}], registry)
        assert (issue.node, issue.field) == ("a", "type")
        assert "http_request" in issue.message

    def test_params_must_be_an_object(self, registry):
        issues = validate_nodes([{"id": "a", "type": "log", "params": []}], registry)
        assert _fields(issues) == {("a", "params")}


class TestSettings:
    @pytest.mark.parametrize(
        ("settings", "field"),
        [
            ({"retry": {"max": 11}}, "retry.max"),
            ({"retry": {"max": 1, "backoff": -1}}, "retry.backoff"),
            ({"retry": {"backoff": 1}}, "retry.max"),
            ({"timeout_s": 0}, "timeout_s"),
            ({"timeout_s": 3601}, "timeout_s"),
            ({"continue_on_fail": "perhaps"}, "continue_on_fail"),
        ],
    )
    def test_settings_out_of_range(self, registry, settings, field):
        node = {"id": "a", "type": "log", "params": {"message": "x"}, **settings}
        assert _fields(validate_nodes([node], registry)) == {("a", field)}


class TestParams:
    def test_wrong_type_names_the_field(self, registry):
        issues = validate_nodes(
            [{"id": "w", "type": "delay", "params": {"seconds": "soon"}}], registry
        )
        assert _fields(issues) == {("w", "params.seconds")}

    def test_out_of_range_param(self, registry):
        issues = validate_nodes(
            [{"id": "w", "type": "delay", "params": {"seconds": 31 * 86400}}], registry
        )
        assert _fields(issues) == {("w", "params.seconds")}

    def test_missing_required_param(self, registry):
        issues = validate_nodes([{"id": "h", "type": "http_request", "params": {}}], registry)
        assert _fields(issues) == {("h", "params.url")}

    def test_unknown_param_is_refused(self, registry):
        params = {"url": "https://example.org", "heders": {}}
        issues = validate_nodes([{"id": "h", "type": "http_request", "params": params}], registry)
        assert _fields(issues) == {("h", "params.heders")}

    def test_nested_param_error_has_dotted_path(self, registry):
        params = {"all": [{"left": 1, "op": "gt", "right": 0}, {"left": 1, "op": "bigger"}]}
        issues = validate_nodes([{"id": "f", "type": "filter", "params": params}], registry)
        assert _fields(issues) == {("f", "params.all.1.op")}

    def test_model_level_rule_names_params(self, registry):
        params = {"url": "https://example.org", "json": {}, "body": "x"}
        [issue] = validate_nodes([{"id": "h", "type": "http_request", "params": params}], registry)
        assert (issue.node, issue.field) == ("h", "params")
        assert "mutually exclusive" in issue.message

    def test_templated_field_is_exempt_from_type_checks(self, registry):
        params = {"seconds": "{{ trigger.body.wait }}"}
        assert validate_nodes([{"id": "w", "type": "delay", "params": params}], registry) == []

    def test_templated_field_is_exempt_from_literal_and_dict_checks(self, registry):
        params = {
            "method": "{{ trigger.body.m }}",
            "url": "{{ trigger.body.url }}",
            "headers": "{{ steps.a.h }}",
        }
        assert (
            validate_nodes([{"id": "h", "type": "http_request", "params": params}], registry) == []
        )

    def test_templated_field_is_still_syntax_checked(self, registry):
        params = {"seconds": "{{ trigger.body.wait "}
        [issue] = validate_nodes([{"id": "w", "type": "delay", "params": params}], registry)
        assert (issue.node, issue.field) == ("w", "params.seconds")
        assert "syntax" in issue.message

    def test_syntax_error_deep_in_params(self, registry):
        params = {"url": "https://example.org", "json": {"a": [{"b": "{% if %}"}]}}
        issues = validate_nodes([{"id": "h", "type": "http_request", "params": params}], registry)
        assert _fields(issues) == {("h", "params.json.a.0.b")}

    def test_every_issue_is_reported(self, registry):
        nodes = [
            {"id": "a", "type": "delay", "params": {"seconds": -1}},
            {"id": "b", "type": "nope"},
            {"id": "c", "type": "log", "params": {"message": "x"}, "timeout_s": -5},
        ]
        assert _fields(validate_nodes(nodes, registry)) == {
            ("a", "params.seconds"),
            ("b", "type"),
            ("c", "timeout_s"),
        }


class TestDetail:
    def test_detail_uses_fastapi_shape(self):
        detail = issues_to_detail([Issue("post", "params.json.a.0", "bad")])
        assert detail == [
            {
                "loc": ["body", "nodes", "post", "params", "json", "a", 0],
                "msg": "bad",
                "type": "value_error",
            }
        ]

    def test_detail_turns_index_labels_into_ints(self):
        [entry] = issues_to_detail([Issue("nodes[3]", "id", "Field required")])
        assert entry["loc"] == ["body", "nodes", 3, "id"]

    def test_detail_for_the_list_itself(self):
        [entry] = issues_to_detail([Issue(None, "", "nodes must be a list")])
        assert entry["loc"] == ["body", "nodes"]


class TestCondition:
    def test_a_valid_if_template_passes(self, registry):
        node = {"id": "n", "type": "log", "if": "{{ trigger.body.ok }}", "params": {"message": "x"}}
        assert validate_nodes([node], registry) == []

    def test_an_if_that_does_not_parse_names_the_field(self, registry):
        node = {"id": "n", "type": "log", "if": "{{ trigger.body.ok ", "params": {"message": "x"}}
        assert _fields(validate_nodes([node], registry)) == {("n", "if")}

    def test_an_if_that_is_no_template_is_refused(self, registry):
        node = {"id": "n", "type": "log", "if": "true", "params": {"message": "x"}}
        [issue] = validate_nodes([node], registry)
        assert (issue.node, issue.field) == ("n", "if")
        assert "must be a template" in issue.message
