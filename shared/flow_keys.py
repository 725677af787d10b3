"""Flow keys: the templates that split a workflow's runs into keys, checked and rendered.

Rendered with the nodes' sandboxed template engine over `{"trigger": ...}`; a key is at most
`MAX_KEY_CHARS` characters of text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.flow import MAX_KEY_CHARS
from shared.nodes.templating import TemplateError, check_syntax, is_template, render


def key_problems(template: str, field: str) -> list[tuple[str, str]]:
    """Syntax errors of a key template, as (field path, message) for a 422 at save."""
    return check_syntax(template, f"{field}.key")


def render_key(template: str | None, trigger: Mapping[str, Any]) -> str:
    """The key value of one run: "" without a template (one key for the whole workflow).

    A template that fails to render, or renders to null, gives "" too: the run is then limited
    with the workflow's other unkeyed runs rather than escaping its limit.
    """
    if not template:
        return ""
    if not is_template(template):
        return template[:MAX_KEY_CHARS]
    try:
        value = render(template, {"trigger": trigger})
    except TemplateError:
        return ""
    if value is None:
        return ""
    return str(value)[:MAX_KEY_CHARS]
