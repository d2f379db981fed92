"""Alertmanager's matcher syntax over run fields, and its durations."""

from __future__ import annotations

import pytest

from runherald.matchers import (
    SILENCE_FIELDS,
    MatcherError,
    format_duration,
    matches_all,
    parse_duration,
    parse_matcher,
    run_fields,
)

RUN = {
    "metadata": {
        "project": "prod-a",
        "name": "train",
        "uid": "u1",
        "iteration": 0,
        "labels": {"team": "vision"},
    },
    "status": {"state": "error"},
}
FIELDS = run_fields(RUN)


def test_run_fields_are_text_and_labels_are_prefixed() -> None:
    assert FIELDS == {
        "project": "prod-a",
        "name": "train",
        "uid": "u1",
        "state": "error",
        "iteration": "0",
        "labels.team": "vision",
    }


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ('project="prod-a"', True),
        ('project="prod"', False),
        ('project!="prod-a"', False),
        ('project!="dev"', True),
        ('project=~"prod-.*"', True),
        ('project=~"prod"', False),  # anchored: a prefix is not a match
        ('project!~"prod-.*"', False),
        ('project!~"dev-.*"', True),
        ('labels.team="vision"', True),
        ('labels.owner=""', True),  # a missing label is the empty string
        ('labels.owner!="sandbox"', True),
        ("state=error", True),  # bare values are allowed
        ('iteration="0"', True),
        ('  name  =~  "tr.*"  ', True),
    ],
)
def test_each_operator(text: str, holds: bool) -> None:
    assert parse_matcher(text).matches(FIELDS) is holds


def test_quoted_values_take_escapes_and_print_back() -> None:
    matcher = parse_matcher(r'name="a \"quoted\" \\ name"')
    assert matcher.value == 'a "quoted" \\ name'
    assert parse_matcher(str(matcher)) == matcher


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('projekt="x"', "unknown field 'projekt' \\(did you mean 'project'\\? "),
        ('notification="x"', "unknown field 'notification'"),
        ('name=~"("', "invalid regular expression"),
        ("project", "is not a matcher"),
        ('project="x', "unbalanced quotes"),
        (r'project="a\qb"', "unknown escape"),
        ('labels.="x"', "needs a label key"),
        (3, "must be a string"),
    ],
)
def test_bad_matchers_say_why(text: object, message: str) -> None:
    with pytest.raises(MatcherError, match=message):
        parse_matcher(text)


def test_silences_may_also_name_the_notification_and_receiver() -> None:
    matcher = parse_matcher('receiver="ml-oncall"', ("project", *SILENCE_FIELDS))
    assert matcher.matches({"receiver": "ml-oncall"})


def test_matches_all_names_the_first_that_fails() -> None:
    matchers = [parse_matcher('project=~"prod-.*"'), parse_matcher('labels.team="nlp"')]
    failed = matches_all(matchers, FIELDS)
    assert failed is not None and str(failed) == 'labels.team="nlp"'
    assert matches_all(matchers[:1], FIELDS) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1w", 604800),
        ("0", 0),
        ("500ms", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1m1h", "1.5h", "-1s", "h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    assert format_duration(5400) == "1h30m"
    assert parse_duration(format_duration(93784)) == 93784
    assert format_duration(0) == "0s"
