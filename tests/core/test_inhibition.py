"""Inhibition: a rule's inhibits checked with paths, the lookup by rule and equal fields, expiry, and what
evaluate records when a rule fires for a run and when another rule's delivery is muted."""

from __future__ import annotations

import time
from typing import Any

import pytest

from runherald import ledger
from runherald.alerting import Receiver, Rule, check_document, parse_rule
from runherald.config import Settings
from runherald.evaluation import evaluate_event
from runherald.inhibition import BUCKET, CLOCK_SKEW, Inhibition, Inhibitions, start_inhibition
from runherald.matchers import parse_matcher
from runherald.rule_index import AlertConfig, parse_record
from runherald.silences import parse_silence

SETTINGS = Settings.from_env({})
HOOK = Receiver("hook", "webhook", {"url": "https://example.com/hook"})
PAGER = Receiver("pager", "console")
HEALTHCHECK = {
    "name": "project-down",
    "matchers": ['labels.kind="healthcheck"'],
    "when": ["error"],
    "receivers": ["hook"],
    "inhibits": ["run-failed"],
    "inhibit_equal": ["project"],
    "inhibit_for": "30m",
}
FAILED = {
    "name": "run-failed",
    "matchers": ['state="error"'],
    "when": ["error"],
    "receivers": ["hook", "pager"],
}


def document(**changes: Any) -> dict[str, Any]:
    return {
        "receivers": [HOOK.to_dict(), PAGER.to_dict()],
        "rules": [{**HEALTHCHECK, **changes}, FAILED],
    }


def problems(doc: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    return {problem.path: problem.message for problem in check_document(doc, **kwargs).problems}


def test_a_rule_that_inhibits_round_trips_through_its_stored_form() -> None:
    checked = check_document(document())
    assert checked.problems == [] and checked.warnings == []
    down = checked.rules[0]
    assert (down.inhibits, down.inhibit_equal, down.inhibit_for) == (("run-failed",), ("project",), 1800.0)
    assert down.to_dict()["inhibit_for"] == "30m" and "inhibits" not in checked.rules[1].to_dict()
    assert isinstance(parse_record("rule/project-down", down.to_dict()), Rule)
    assert parse_record("rule/project-down", down.to_dict()) == down


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"inhibits": ["run-faild"]}, "rules.project-down.inhibits[0]", "unknown rule 'run-faild'"),
        ({"inhibits": ["run-faild"]}, "rules.project-down.inhibits[0]", "did you mean 'run-failed'"),
        ({"inhibits": ["project-down"]}, "rules.project-down.inhibits[0]", "cannot inhibit itself"),
        ({"inhibits": ["run-failed", "run-failed"]}, "rules.project-down.inhibits[1]", "named twice"),
        ({"inhibits": []}, "rules.project-down.inhibits", "at least one rule name"),
        ({"inhibit_equal": ["projekt"]}, "rules.project-down.inhibit_equal[0]", "unknown field 'projekt'"),
        ({"inhibit_equal": ["labels."]}, "rules.project-down.inhibit_equal[0]", "needs a label key"),
        ({"inhibit_equal": "project"}, "rules.project-down.inhibit_equal", "list of fields"),
        ({"inhibit_for": None}, "rules.project-down.inhibit_for", "needs inhibit_for"),
        ({"inhibit_for": "0s"}, "rules.project-down.inhibit_for", "longer than 0s"),
        ({"inhibit_for": "soon"}, "rules.project-down.inhibit_for", "not a duration"),
        ({"inhibit_for": "400d"}, "rules.project-down.inhibit_for", "at most 366d"),
    ],
)
def test_each_bad_inhibition_field_has_its_path(changes: dict[str, Any], path: str, message: str) -> None:
    found = problems(document(**changes), stored_receivers=())
    assert path in found, found
    assert message in found[path]


def test_inhibit_equal_and_inhibit_for_need_inhibits() -> None:
    rule = {key: value for key, value in HEALTHCHECK.items() if key != "inhibits"}
    found = problems({"receivers": [HOOK.to_dict()], "rules": [rule]})
    assert set(found) == {"rules.project-down.inhibit_equal", "rules.project-down.inhibit_for"}
    assert "only meaningful with inhibits" in found["rules.project-down.inhibit_for"]


def test_an_inhibited_rule_may_be_stored_or_in_the_document_and_offline_is_a_warning() -> None:
    alone = {"receivers": [HOOK.to_dict()], "rules": [HEALTHCHECK]}
    # At apply: a stored rule will do; none is a problem.
    assert problems(alone, stored_receivers=(), stored_rules={"run-failed"}) == {}
    assert "rules.project-down.inhibits[0]" in problems(alone, stored_receivers=(), stored_rules=())
    # Offline, it may exist where the document is applied: a warning, and the rule still parses.
    offline = check_document(alone)
    assert offline.problems == [] and [rule.name for rule in offline.rules] == ["project-down"]
    (warning,) = offline.warnings
    assert warning.path == "rules.project-down.inhibits[0]" and "must exist when applied" in warning.message
    # One rule through PUT: the stored rules are what it may name.
    rule, found, _ = parse_rule(HEALTHCHECK, "rules.project-down", {"hook"}, rules={"other"})
    assert rule is None and [problem.path for problem in found] == ["rules.project-down.inhibits[0]"]


def inhibition(now: float, **fields: str) -> Inhibition:
    return start_inhibition(
        "project-down", ("run-failed",), ("project", "labels.team"), 60.0, fields, "prod-a/u7", now
    )


def test_the_lookup_needs_the_rule_and_every_equal_field() -> None:
    now = time.time()
    known = Inhibitions()
    muting = inhibition(now, project="prod-a", **{"labels.team": "vision", "name": "x"})
    known.put(muting.key, muting)
    same = {"project": "prod-a", "labels.team": "vision", "name": "other"}
    assert known.muting("run-failed", same, now + 1) == muting
    assert known.muting("another-rule", same, now + 1) is None
    assert known.muting("run-failed", {**same, "project": "prod-b"}, now + 1) is None
    assert known.muting("run-failed", {"project": "prod-a"}, now + 1) is None  # team "" is not "vision"
    # A missing field is "": it equals a missing field, as matchers have it.
    blank = inhibition(now, project="prod-c")
    known.put(blank.key, blank)
    assert known.muting("run-failed", {"project": "prod-c"}, now) == blank
    assert muting.describe() == (
        "inhibited by rule project-down (run prod-a/u7) until "
        + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60))
    )


def test_an_inhibition_expires_and_a_renewal_lengthens_it() -> None:
    now = 1_800_000_000.0 + 600  # ten minutes into an hour: the renewal below is in the same one
    known = Inhibitions()
    first = inhibition(now, project="prod-a")
    known.put(first.key, first)
    fields = {"project": "prod-a"}
    assert known.muting("run-failed", fields, now + 59) == first
    assert known.muting("run-failed", fields, now + 60) is None
    assert known.active(now + 60) == []
    # Renewed 30s later (same key within the hour): lasts until then + 60s; an older copy read back
    # afterwards does not shorten it.
    renewed = inhibition(now + 30, project="prod-a")
    assert renewed.key == first.key
    known.put(renewed.key, renewed)
    known.put(first.key, first)
    assert known.muting("run-failed", fields, now + 80) == renewed
    # Deleted only once expired and its key's hour is long over: no renewal can race the delete.
    assert known.deletable(now + 100) == []
    assert known.deletable((int(now // BUCKET) + 1) * BUCKET + CLOCK_SKEW) == [first.key]
    known.put(first.key, None)
    assert len(known) == 0 and known.muting("run-failed", fields, now + 80) is None


def test_an_inhibition_is_a_record_of_the_rules_topic() -> None:
    now = time.time()
    made = inhibition(now, project="prod-a")
    assert made.key.startswith("inhibition/project-down/")
    assert parse_record(made.key, made.to_record()) == made
    assert parse_record(made.key + "x", made.to_record()) is None  # its key is not the inhibition's
    assert parse_record(made.key, {"source": "x"}) is None
    assert made.to_dict()["equal"] == {"project": "prod-a", "labels.team": ""}


def run(project: str, uid: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"project": project, "uid": uid, "name": "train", "labels": labels, "iteration": 0},
        "spec": {"notifications": [{"kind": "console", "name": "own", "when": ["error"]}]},
        "status": {"state": "error"},
    }


def evaluate(config: AlertConfig, event: dict[str, Any]) -> tuple[Any, ledger.Record]:
    meta = event["metadata"]
    record = ledger.new_record(meta["project"], meta["uid"])
    return evaluate_event(event, record=record, source=(0, 7), settings=SETTINGS, alerts=config), record


def config_of(*objects: Any) -> AlertConfig:
    checked = check_document(document())
    return AlertConfig.from_objects([*checked.receivers, *checked.rules, *objects])


def test_a_firing_rule_starts_an_inhibition_that_mutes_the_same_runs_rule_deliveries() -> None:
    config = config_of()
    result, record = evaluate(config, run("prod-a", "u7", kind="healthcheck"))
    (started,) = result.inhibitions
    assert (started.source, started.inhibited, started.equal) == (
        "project-down",
        ("run-failed",),
        (("project", "prod-a"),),
    )
    assert started.run == "prod-a/u7"
    # Its own delivery and the run's own go out; run-failed's two receivers are muted by it.
    assert sorted(d.name for d in result.deliveries) == ["own", "project-down/hook"]
    muted = {e["name"]: e for e in record["deliveries"].values() if e["status"] == "skipped"}
    assert set(muted) == {"run-failed/hook", "run-failed/pager"}
    assert muted["run-failed/hook"]["reason"].startswith(
        "inhibited by rule project-down (run prod-a/u7) until "
    )
    assert muted["run-failed/hook"]["inhibition"] == started.key


def test_a_known_inhibition_mutes_only_the_named_rule_for_the_same_field_values() -> None:
    config = config_of()
    now = time.time()
    known = start_inhibition(
        "project-down", ("run-failed",), ("project",), 60.0, {"project": "prod-a"}, "prod-a/u7", now
    )
    config.inhibitions.put(known.key, known)
    result, record = evaluate(config, run("prod-a", "u8"))
    assert result.inhibitions == [] and [d.name for d in result.deliveries] == ["own"]  # own: never inhibited
    reasons = {e["name"]: e["reason"] for e in record["deliveries"].values() if e["status"] == "skipped"}
    assert reasons["run-failed/pager"] == known.describe()
    other, _ = evaluate(config, run("prod-b", "u9"))
    assert sorted(d.name for d in other.deliveries) == ["own", "run-failed/hook", "run-failed/pager"]
    # Expired: let through again.
    expired = Inhibition(known.source, known.inhibited, known.equal, known.run, now - 1, now - 61)
    config.inhibitions.put(known.key, None)
    config.inhibitions.put(expired.key, expired)
    again, _ = evaluate(config, run("prod-a", "u10"))
    assert sorted(d.name for d in again.deliveries) == ["own", "run-failed/hook", "run-failed/pager"]


def test_a_silenced_source_still_inhibits_and_a_rule_not_firing_does_not() -> None:
    silence = parse_silence(
        {"matchers": ['notification="project-down/hook"'], "duration": "1h", "comment": "maint"},
        now=time.time() - 1,
    )
    result, record = evaluate(config_of(silence), run("prod-a", "u7", kind="healthcheck"))
    assert [d.name for d in result.deliveries] == ["own"] and len(result.inhibitions) == 1
    statuses = {e["name"]: e["status"] for e in record["deliveries"].values()}
    assert statuses["project-down/hook"] == "skipped" and statuses["run-failed/hook"] == "skipped"
    # A completed healthcheck: project-down (when: error) does not fire, so nothing is inhibited.
    calm = run("prod-a", "u8", kind="healthcheck")
    calm["status"]["state"] = "completed"
    quiet, _ = evaluate(config_of(), calm)
    assert quiet.inhibitions == []
    assert Rule("r", (parse_matcher('project="x"'),), ("hook",)).inhibits == ()
