"""Hand-made traces for the viz tests (no model needed)."""

from __future__ import annotations

from workbench.traces import Step, Trace

HOSTILE = '<script>alert("x")</script> & "quoted" <b>bold</b>'


def make_traces(n: int = 3) -> list[Trace]:
    """``n`` small traces with checker-like labels, a signed score, a soft score and one hostile step text."""
    traces = []
    for t in range(n):
        texts = ["n=a1+b2=n3", "y=n3+c4=y8", "wait y7" if t == 1 else "check y8", "ans=8"]
        if t == 0:
            texts[1] = HOSTILE
        completion, steps = "", []
        for i, text in enumerate(texts):
            start = len(completion)
            completion += text + "\n"
            labels = {"correct": not (t == 1 and i == 1), "spae_phi": -0.8 + 0.5 * i + 0.1 * t, "rollout_soft": i / 3}
            kind = "wait" if text.startswith("wait") else "check" if text.startswith("check") else "compute"
            steps.append(Step(index=i, text=text, char_start=start, char_end=len(completion), kind=kind, labels=labels))
        traces.append(
            Trace(
                trace_id=f"t{t}",
                problem_id=f"p{t}",
                prompt="a1,b2,c4;n=a+b;y=n+c;?y\n",
                completion=completion,
                steps=tuple(steps),
                answer="8",
                answer_correct=t != 2,
                gold_answer="8",
            )
        )
    return traces
