"""The checker on hand-written traces: corrections, propagation, garbled lines, checks."""

import pytest

from workbench.toy import check_trace, parse_prompt

PROMPT = "b48,i68,c71;n=i+c;y=c+n;d=b+n;?d\n"  # n=39, y=10, d=87


def labels(completion):
    return check_trace(parse_prompt(PROMPT), completion)


def table(result):
    return [(s.kind, s.correct, s.logical, s.first_error) for s in result.steps]


def test_clean_trace_is_all_correct():
    r = labels("n=i68+c71=n39\ny=c71+n39=y10\nd=b48+n39=d87\nans=87\n")
    assert table(r) == [("compute", True, True, False)] * 3 + [("answer", True, True, False)]
    assert r.answer == 87 and r.answer_correct and r.first_error_index == -1


def test_corrected_error():
    r = labels("n=i68+c71=n40\nwait n39\ny=c71+n39=y10\nd=b48+n39=d87\nans=87\n")
    assert table(r)[:2] == [("compute", False, False, True), ("wait", True, True, False)]
    assert r.answer_correct and r.first_error_index == 0


def test_uncorrected_error_propagates_logical_but_incorrect():
    r = labels("n=i68+c71=n40\ny=c71+n40=y11\nd=b48+n40=d88\nans=88\n")
    assert table(r) == [
        ("compute", False, False, True),
        ("compute", False, True, False),
        ("compute", False, True, False),
        ("answer", False, True, False),
    ]
    assert not r.answer_correct and r.answer == 88 and r.first_error_index == 0


def test_garbled_line_is_labelled_not_raised():
    r = labels("n=i68+c71=n39\ny=c71+n3#9=y1\n@@@\nd=b48+n39=d87\nans=87\n")
    assert [s.kind for s in r.steps] == ["compute", "garbled", "garbled", "compute", "answer"]
    assert r.steps[1].correct is False and r.steps[1].first_error
    assert r.first_error_index == 1 and r.answer_correct


def test_check_lines_verify_the_stated_value():
    r = labels("n=i68+c71=n39\ncheck n39\ny=c71+n39=y10\ncheck y11\nd=b48+n39=d87\nans=87\n")
    assert table(r)[1] == ("check", True, True, False)
    assert table(r)[3] == ("check", False, False, True)  # states a value the trace never had


def test_result_written_for_another_variable_is_garbled():
    r = labels("n=i68+c71=y39\ny=c71+n39=y10\nd=b48+n39=d87\nans=87\n")
    assert r.steps[0].kind == "garbled" and r.steps[0].first_error


def test_wrong_statement_for_variable_is_garbled():
    r = labels("n=i68-c71=n97\ny=c71+n97=y68\nans=68\n")  # the program says n=i+c
    assert r.steps[0].kind == "garbled" and not r.answer_correct


@pytest.mark.parametrize("text", ["", "\n\n", "ans=", "ans=12\nans=87\n", "n=i68+c71=n39\n" * 3])
def test_malformed_output_never_crashes(text):
    r = labels(text)
    assert r.first_error_index in {-1, *range(len(r.steps))}
    if text.startswith("ans=12\nans=87"):
        assert r.answer == 87  # the last stated answer counts


def test_parse_prompt_rejects_non_task_text():
    with pytest.raises(ValueError, match="prompt="):
        parse_prompt("what is 2+2?")
    with pytest.raises(ValueError, match="undefined variable"):
        parse_prompt("a1;b=a+z;?b")
