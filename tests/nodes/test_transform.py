from __future__ import annotations

import pytest
from pydantic import ValidationError

from nodes.transform import NODE, TransformParams
from shared.nodes import render
from tests.shared.nodes.local_http import make_ctx


class TestTransform:
    async def test_output_is_the_values_object(self, client):
        params = TransformParams.model_validate({"values": {"a": 1, "b": {"c": [1, 2]}}})
        assert await NODE.execute(make_ctx(client), params) == {"a": 1, "b": {"c": [1, 2]}}

    async def test_values_rendered_by_the_engine_keep_their_types(self, client):
        raw = {
            "values": {
                "total": "{{ trigger.body.amount * 2 }}",
                "label": "order {{ trigger.body.id }}",
            }
        }
        rendered = render(raw, {"trigger": {"body": {"amount": 21, "id": "o1"}}})
        output = await NODE.execute(make_ctx(client), TransformParams.model_validate(rendered))
        assert output == {"total": 42, "label": "order o1"}

    def test_values_must_be_an_object(self):
        with pytest.raises(ValidationError):
            TransformParams.model_validate({"values": [1, 2]})
