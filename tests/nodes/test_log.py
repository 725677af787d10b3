from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from nodes.log import NODE, LogParams
from tests.shared.nodes.local_http import make_ctx


class TestLog:
    async def test_logs_message_with_run_and_node(self, client, caplog):
        with caplog.at_level(logging.DEBUG, logger="tests.nodes"):
            output = await NODE.execute(make_ctx(client, node_id="note"), LogParams(message="hi"))
        [record] = [r for r in caplog.records if r.name == "tests.nodes"]
        assert (record.getMessage(), record.levelno) == ("hi", logging.INFO)
        assert (record.run_id, record.node_id, record.workflow_id) == ("run-1", "note", "wf-1")
        assert output == {"message": "hi"}

    async def test_level_is_honoured(self, client, caplog):
        with caplog.at_level(logging.DEBUG, logger="tests.nodes"):
            await NODE.execute(make_ctx(client), LogParams(message="bad", level="error"))
        assert [r.levelno for r in caplog.records if r.name == "tests.nodes"] == [logging.ERROR]

    async def test_structured_message_is_logged_as_json(self, client, caplog):
        with caplog.at_level(logging.INFO, logger="tests.nodes"):
            output = await NODE.execute(make_ctx(client), LogParams(message={"n": 1}))
        assert [r.getMessage() for r in caplog.records if r.name == "tests.nodes"] == ['{"n": 1}']
        assert output == {"message": {"n": 1}}

    def test_unknown_level_refused(self):
        with pytest.raises(ValidationError):
            LogParams(message="x", level="loud")
