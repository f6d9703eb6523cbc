"""Fixtures for the trace tests: the char tokenizer, a byte-level BPE trained here, hypothesis text strategies."""

from __future__ import annotations

from hypothesis import strategies as st

# Fragments that exercise every segmenter: delimiters, connectors, markers, math, non-ASCII, odd whitespace.
FRAGMENTS = [
    "We add the numbers",
    "x=1+2=3",
    ".",
    ". ",
    ".\n\n",
    ".\n\n\n",
    "\n",
    "\n\n",
    " \n \n",
    "  ",
    "Therefore ",
    "So ",
    "so ",
    "Wait, ",
    "Alternatively ",
    "e.g. the ",
    "$$a = b. c$$",
    "\\[u. V\\]",
    "$y. Z$",
    "ünïcödé ",
    "ans=42",
    "! ",
    "? ",
    "\t",
]


def completions() -> st.SearchStrategy[str]:
    """Completions built from :data:`FRAGMENTS` (never blank)."""
    return st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14).map("".join).filter(lambda s: s.strip())


def prompts() -> st.SearchStrategy[str]:
    return st.sampled_from(["", "Q: 1+2?\n", "a=1,b=2;c=a+b;?c\n", "Problem. ", "ü"])
