"""Save-time checks of `after`, `join`, `for_each` and `concurrency`."""

from __future__ import annotations

from typing import Any

import pytest

from shared.nodes import Issue, NodeRegistry, load_registry, validate_nodes


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return load_registry()


def _node(node_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "transform", "params": {"values": {}}, **extra}


class TestGraph:
    def test_branches_joins_and_for_each_are_valid(self, registry: NodeRegistry) -> None:
        nodes = [
            _node("start"),
            _node("a", after=["start"]),
            _node("b", after=["start"], for_each="{{ trigger.body.items }}", concurrency=8),
            _node("first", after=["a", "b"], join="any"),
            _node("later", after=[]),
            _node("listed"),
        ]
        assert validate_nodes(nodes, registry) == []

    def test_unknown_ids_in_after_are_named(self, registry: NodeRegistry) -> None:
        nodes = [_node("a"), _node("b", after=["a", "nope"])]
        assert validate_nodes(nodes, registry) == [
            Issue("b", "after.1", "unknown node id 'nope' in 'after'")
        ]

    def test_a_cycle_names_its_nodes(self, registry: NodeRegistry) -> None:
        nodes = [_node("a", after=["c"]), _node("b", after=["a"]), _node("c", after=["b"])]
        [issue] = validate_nodes(nodes, registry)
        assert issue.field == "after"
        assert "cycle" in issue.message
        for node_id in ("a", "b", "c"):
            assert f"{node_id}" in issue.message

    def test_a_node_after_itself_is_a_cycle(self, registry: NodeRegistry) -> None:
        [issue] = validate_nodes([_node("a", after=["a"])], registry)
        assert (issue.node, issue.field) == ("a", "after")
        assert issue.message.endswith("a -> a")

    def test_an_after_that_points_back_in_list_order_is_a_cycle(
        self, registry: NodeRegistry
    ) -> None:
        # `b` follows `a` (list order) and `a` waits for `b`.
        [issue] = validate_nodes([_node("a", after=["b"]), _node("b")], registry)
        assert "cycle" in issue.message

    def test_join_any_needs_after(self, registry: NodeRegistry) -> None:
        assert validate_nodes([_node("a", join="any")], registry) == [
            Issue("a", "join", "'any' applies to a node with a non-empty 'after'")
        ]

    def test_bad_join_and_concurrency_values(self, registry: NodeRegistry) -> None:
        nodes = [
            _node("a", join="some", after=[]),
            _node("b", for_each="{{ [1] }}", concurrency=65),
            _node("c", for_each="{{ [1] }}", concurrency=0),
        ]
        fields = {(issue.node, issue.field) for issue in validate_nodes(nodes, registry)}
        assert fields == {("a", "join"), ("b", "concurrency"), ("c", "concurrency")}

    def test_for_each_must_be_a_valid_template(self, registry: NodeRegistry) -> None:
        nodes = [_node("a", for_each="items"), _node("b", for_each="{{ items ")]
        issues = validate_nodes(nodes, registry)
        assert {(issue.node, issue.field) for issue in issues} == {
            ("a", "for_each"),
            ("b", "for_each"),
        }

    def test_concurrency_needs_for_each(self, registry: NodeRegistry) -> None:
        assert validate_nodes([_node("a", concurrency=2)], registry) == [
            Issue("a", "concurrency", "applies to a node with 'for_each'")
        ]

    def test_parking_nodes_cannot_run_per_item(self, registry: NodeRegistry) -> None:
        nodes = [
            {"id": "wait", "type": "delay", "params": {"seconds": 1}, "for_each": "{{ [1] }}"},
            {
                "id": "ask",
                "type": "wait_for_callback",
                "params": {"timeout_s": 60},
                "for_each": "{{ [1] }}",
            },
        ]
        issues = validate_nodes(nodes, registry)
        assert [(i.node, i.field) for i in issues] == [("wait", "for_each"), ("ask", "for_each")]
        assert "parks the whole run" in issues[0].message
