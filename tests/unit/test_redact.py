from __future__ import annotations

import pytest

from modelsync.redact import scrub


@pytest.mark.parametrize("text,leak", [
    ("GET https://admin:hunter2@zstack.example.com/zstack/v1", "hunter2"),
    ("headers={'Authorization': 'OAuth 0123456789abcdef0123456789abcdef'}", "0123456789abcdef0123456789abcdef"),
    ("Authorization: Bearer nvapi-SECRET-123456", "nvapi-SECRET-123456"),
    ('{"password": "s3cr3t-pw"}', "s3cr3t-pw"),
    ("https://x/api?token=abcdef123456&x=1", "abcdef123456"),
    ("rejected instill_sk_abcdef", "instill_sk_abcdef"),
    ("session uuid=5f0c9c9ab5bd4f8ab2c9d51a60a1c0f4", "5f0c9c9ab5bd4f8ab2c9d51a60a1c0f4"),
])
def test_secret_shapes_are_masked(text: str, leak: str) -> None:
    out = scrub(text, secrets=["5f0c9c9ab5bd4f8ab2c9d51a60a1c0f4"])
    assert leak not in out
    assert "***" in out


def test_known_values_masked_and_plain_text_kept() -> None:
    assert scrub("the password is plain-value-42 here", ["plain-value-42"]) == "the password is *** here"
    assert scrub("field[installPath] is mandatory") == "field[installPath] is mandatory"
