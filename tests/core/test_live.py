"""What a live subscription selects: the query's filter and `since`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runherald.live import RunFilter, parse_query, parse_since

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC).timestamp()


def run(project: str, state: str, **labels: str) -> dict:
    return {"metadata": {"project": project, "uid": "u", "labels": labels}, "status": {"state": state}}


def test_filter_project_glob_states_any_labels_all() -> None:
    wanted, _, problems = parse_query(
        [("project", "ml-*"), ("state", "completed,error"), ("label", "team=a"), ("label", "env=prod")], NOW
    )
    assert problems == []
    assert wanted.matches(run("ml-train", "error", team="a", env="prod"))
    assert not wanted.matches(run("ml-train", "running", team="a", env="prod"))
    assert not wanted.matches(run("dl-train", "error", team="a", env="prod"))
    assert not wanted.matches(run("ml-train", "error", team="a"))
    assert not wanted.matches(run("ml-train", "error", team="b", env="prod"))
    assert RunFilter().matches(run("anything", "pending"))


def test_since_rfc3339_or_duration() -> None:
    assert parse_since("10m", NOW) == NOW - 600
    assert parse_since("2026-05-01T11:00:00Z", NOW) == NOW - 3600
    assert parse_since("2026-05-01T13:00:00+02:00", NOW) == NOW - 3600
    for bad in ("yesterday", "2026-05-01T11:00:00", ""):
        with pytest.raises(ValueError):
            parse_since(bad, NOW)


def test_every_bad_parameter_is_a_problem_at_its_path() -> None:
    _, since, problems = parse_query(
        [("state", "bogus"), ("label", "=x"), ("label", "novalue"), ("since", "later"), ("colour", "red")],
        NOW,
    )
    assert since is None
    assert [p.path for p in problems] == ["state", "label", "label", "since", "colour"]
    _, since, problems = parse_query([("since", "1h")], NOW)
    assert (since, problems) == (NOW - 3600, [])
