"""Sealing with AES-GCM under a keyring: newest key seals, every key opens, nothing else does."""

from __future__ import annotations

import base64

import pytest

from shared.crypto import (
    DecryptionFailed,
    Keyring,
    KeyringError,
    generate_key_entry,
    is_sealed,
    key_id_of,
)

OLD = generate_key_entry("old")
NEW = generate_key_entry("new")
CONTEXT = b"credential:1"


class TestParse:
    @pytest.mark.parametrize(
        ("text", "complaint"),
        [
            ("", "no key"),
            ("nokey", "expected <id>:<base64 key>"),
            ("a:not base64!", "not valid base64"),
            (f"a:{base64.b64encode(b'short').decode()}", "must be 32 bytes"),
            (f"{OLD},{OLD}", "twice"),
        ],
    )
    def test_refuses_a_malformed_value_saying_why(self, text: str, complaint: str) -> None:
        with pytest.raises(KeyringError, match=complaint):
            Keyring.parse(text)

    def test_the_first_key_is_the_newest(self) -> None:
        assert Keyring.parse(f"{NEW}, {OLD}").newest_id == "new"


class TestSeal:
    def test_round_trip_without_the_plaintext_in_the_sealed_value(self) -> None:
        keyring = Keyring.parse(OLD)
        sealed = keyring.seal(b"hunter2-hunter2", CONTEXT)
        assert is_sealed(sealed)
        assert key_id_of(sealed) == "old"
        assert b"hunter2" not in sealed.encode()
        assert keyring.open(sealed, CONTEXT) == b"hunter2-hunter2"

    def test_the_same_value_seals_differently_each_time(self) -> None:
        keyring = Keyring.parse(OLD)
        assert keyring.seal(b"v", CONTEXT) != keyring.seal(b"v", CONTEXT)

    def test_a_value_moved_to_another_row_does_not_open(self) -> None:
        keyring = Keyring.parse(OLD)
        with pytest.raises(DecryptionFailed):
            keyring.open(keyring.seal(b"v", CONTEXT), b"credential:2")

    def test_a_tampered_value_does_not_open(self) -> None:
        keyring = Keyring.parse(OLD)
        sealed = keyring.seal(b"value", CONTEXT)
        tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
        with pytest.raises(DecryptionFailed):
            keyring.open(tampered, CONTEXT)


class TestRotation:
    def test_old_values_open_after_a_new_key_is_added_and_reseal_under_it(self) -> None:
        sealed = Keyring.parse(OLD).seal(b"value", CONTEXT)
        rotated = Keyring.parse(f"{NEW},{OLD}")
        assert rotated.open(sealed, CONTEXT) == b"value"
        resealed = rotated.reseal(sealed, CONTEXT)
        assert resealed is not None
        assert key_id_of(resealed) == "new"
        assert Keyring.parse(NEW).open(resealed, CONTEXT) == b"value"
        assert rotated.reseal(resealed, CONTEXT) is None

    def test_a_dropped_key_names_itself_in_the_error(self) -> None:
        sealed = Keyring.parse(OLD).seal(b"value", CONTEXT)
        with pytest.raises(DecryptionFailed, match="'old'"):
            Keyring.parse(NEW).open(sealed, CONTEXT)
