"""Scrubbing credential values out of what a node returns, raises or logs."""

from __future__ import annotations

import io
import logging

from services.worker.engine.credentials import encoded_forms, scrub
from services.worker.engine.secret_scope import (
    install_log_scrubbing,
    register,
    scrub_message,
    step_scope,
)

SECRETS = {"api": "Bearer tok-0123456789", "api.token": "tok-0123456789"}


class TestScrub:
    def test_replaces_whole_values_at_any_depth(self) -> None:
        value = {
            "headers": {"authorization": "Bearer tok-0123456789"},
            "list": ["x tok-0123456789"],
        }
        assert scrub(value, SECRETS) == {
            "headers": {"authorization": "[credential api]"},
            "list": ["x [credential api.token]"],
        }

    def test_replaces_a_value_cut_off_at_the_end_of_an_excerpt(self) -> None:
        excerpt = "answered 401: rejected {'authorization': 'Bearer tok-01234"
        assert scrub(excerpt, SECRETS).endswith("'[credential api]")

    def test_replaces_a_value_cut_off_at_the_start_of_a_preview(self) -> None:
        scrubbed = scrub("456789 and the rest", SECRETS)
        assert scrubbed.startswith("[credential api")
        assert scrubbed.endswith("] and the rest")
        assert "456789" not in scrubbed

    def test_leaves_everything_else_alone(self) -> None:
        value = {"status": 200, "body": "tok is short", "n": None}
        assert scrub(value, SECRETS) == value
        assert scrub("abc", {"tiny": "abc"}) == "abc"  # below the scrubbed length


class TestEncodedForms:
    def test_the_encodings_the_engine_sends_are_scrubbed_too(self) -> None:
        forms = encoded_forms("k", 'a b+c/d="e')
        text = 'query a%20b%2Bc%2Fd%3D%22e form a+b%2Bc%2Fd%3D%22e json a b+c/d=\\"e'
        assert scrub(text, forms) == (
            "query [credential k.url] form [credential k.form] json [credential k.json]"
        )


class TestStepScope:
    def test_every_log_record_of_a_step_is_scrubbed_tracebacks_included(self) -> None:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            install_log_scrubbing()
            logger = logging.getLogger("any.library")
            with step_scope():
                register({"k": "tok-0123456789"})
                logger.warning("sent %s", "tok-0123456789")
                try:
                    raise ValueError("Invalid port: 'tok-0123456789'")
                except ValueError:
                    logger.exception("failed")
                assert scrub_message("x tok-0123456789") == "x [credential k]"
            logger.warning("after the step: %s", "tok-0123456789")
        finally:
            root.removeHandler(handler)
        lines = stream.getvalue()
        assert "sent [credential k]" in lines
        assert "Invalid port: '[credential k]'" in lines  # the traceback, scrubbed
        assert lines.count("tok-0123456789") == 1  # only the line logged outside any step
