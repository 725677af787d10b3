"""The node plugin surface: contract, templating, discovery, validation and the egress guard.

Node files and services import from here; the submodules are free to change behind it.
"""

from shared.nodes.contract import (
    CallWorkflow,
    Halt,
    NodeContext,
    NodeDefinition,
    NodeError,
    NodeSettings,
    NodeSpec,
    Park,
    RetryableNodeError,
    RetryPolicy,
)
from shared.nodes.egress import EgressDenied, EgressPolicy, build_http_client
from shared.nodes.loader import NodeRegistry, load_registry
from shared.nodes.templating import TemplateError, check_syntax, is_template, render
from shared.nodes.validation import Issue, issues_to_detail, validate_nodes

__all__ = [
    "CallWorkflow",
    "EgressDenied",
    "EgressPolicy",
    "Halt",
    "Issue",
    "NodeContext",
    "NodeDefinition",
    "NodeError",
    "NodeRegistry",
    "NodeSettings",
    "NodeSpec",
    "Park",
    "RetryPolicy",
    "RetryableNodeError",
    "TemplateError",
    "build_http_client",
    "check_syntax",
    "is_template",
    "issues_to_detail",
    "load_registry",
    "render",
    "validate_nodes",
]
