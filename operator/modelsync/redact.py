"""Scrub secrets from text before it reaches a log line, an Event or a status field.

httpx exceptions can carry the request URL (with userinfo or a token in the
query) and their ``repr`` can carry headers; registries echo request bodies in
error details. Everything the operator writes out passes :func:`scrub`.
"""
from __future__ import annotations

import re
from functools import cache
from typing import Iterable

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # userinfo in URLs: scheme://user:pass@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]*@"), r"\1***@"),
    # Authorization headers and bearer/OAuth tokens
    (re.compile(r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(bearer|oauth|basic)?\s*[^\s\"',;}]+"), r"\1\2 ***"),
    (re.compile(r"(?i)\b(bearer|oauth)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 ***"),
    # key=value / "key": "value" for secret-looking keys, in query strings, JSON and text
    (re.compile(r"(?i)([\"']?\b(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|session(?:uuid|id)?)\b[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"), r"\1***"),
]


@cache
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """The patterns above, then each registry's own (its descriptor's ``secret_patterns``, e.g. API
    tokens with a recognisable prefix, wherever they appear)."""
    from .vendors import vendors

    own = tuple((re.compile(p), r) for v in vendors() for p, r in v.secret_patterns)
    return (*_PATTERNS, *own)


def scrub(text: object, secrets: Iterable[str] = ()) -> str:
    """``text`` as a string with known secret values and secret-looking parts masked."""
    s = str(text)
    for value in sorted({v for v in secrets if v and len(v) >= 4}, key=len, reverse=True):
        s = s.replace(value, "***")
    for pattern, repl in _patterns():
        s = pattern.sub(repl, s)
    return s
