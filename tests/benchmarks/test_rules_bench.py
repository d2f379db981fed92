"""The rule-scaling phase's inputs say what its figures claim: each stored rule matches its own project,
the events match one rule (on both sides, the same one) or none, one in a hundred."""

from __future__ import annotations

import orjson
from runherald.benchmarks import rules

from runherald.events import validate_run
from runherald.matchers import run_fields
from runherald.rule_index import AlertConfig


def test_the_stored_records_are_what_rules_apply_would_write_and_parse_back() -> None:
    records = rules.rule_records(rules.MANY_RULES, "http://127.0.0.1:9/rules")
    config = AlertConfig.from_records({key.decode(): orjson.loads(value) for key, value in records})
    assert (len(config.rules), list(config.receivers)) == (rules.MANY_RULES, [rules.RECEIVER])
    assert config.rules["proj-42-failures"].to_dict() == {
        "name": "proj-42-failures",
        "matchers": ['project="proj-42"'],
        "when": ["error"],
        "receivers": [rules.RECEIVER],
    }


def test_one_event_in_a_hundred_matches_one_rule_the_same_on_both_sides() -> None:
    few = AlertConfig.from_objects(
        [rules.receiver("http://x"), *(rules.rule(i) for i in range(rules.FEW_RULES))]
    )
    many = AlertConfig.from_objects(
        [rules.receiver("http://x"), *(rules.rule(i) for i in range(rules.MANY_RULES))]
    )
    matched = []
    for key, value in rules.rule_events("r", 1000):
        run = orjson.loads(value)
        validate_run(run)
        assert key.decode() == f"{run['metadata']['project']}/{run['metadata']['uid']}"
        fields = run_fields(run)
        names = [rule.name for rule in few.matching_rules(fields)]
        assert names == [rule.name for rule in many.matching_rules(fields)]
        assert len(names) <= 1
        matched += names
    assert len(matched) == rules.matching_events(1000) == 10
    assert len(set(matched)) == 10
