"""Toy traces aligned to the char tokenizer, with dependency labels, for the attribution tests."""

from __future__ import annotations

import pytest

from workbench.labels import dependency_labels, join_labels, trace_from_text
from workbench.toy.checker import parse_prompt

TRACES = [
    ("b48,i68,c71;n=i+c;y=c+n;?y\n", "n=i68+c71=n39\ny=c71+n39=y10\nans=10\n"),
    (
        "b48,i68,c71;n=i+c;y=c+n;d=b+y;?d\n",
        "n=i68+c71=n40\nwait n39\ny=c71+n39=y10\ncheck y10\nd=b48+y10=d58\nans=58\n",
    ),
    ("a5,b7;c=a+b;?c\n", "c=a5+b7=c12\nans=12\n"),
]


@pytest.fixture(scope="session")
def toy_traces(char_tokenizer):
    traces = [
        trace_from_text(parse_prompt(p, problem_id=f"p{i}"), c, trace_id=f"t{i}", tokenizer=char_tokenizer)
        for i, (p, c) in enumerate(TRACES)
    ]
    return join_labels(traces, dependency_labels(traces))
