"""Checking an error message a student reads, word for word."""

import re


def exactly(text: str) -> str:
    """A pattern for ``pytest.raises(..., match=...)`` that matches the whole message ``text`` and nothing else."""
    return "^" + re.escape(text) + "$"
