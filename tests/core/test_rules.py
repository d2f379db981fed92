"""runherald.rules: MLRun 1.12.1 trigger and message rules, bounded conditions, redaction."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from runherald import delivery, rules
from runherald.rules import (
    ConditionLimits,
    Decision,
    check_unique_names,
    compose_message,
    evaluate,
    redact_run,
    severity_of,
    validate_condition,
)
from runherald.sandbox import compile_condition, render_condition

FIXTURES = Path(__file__).parent.parent / "fixtures" / "rules"
SHOULD_NOTIFY = json.loads((FIXTURES / "should_notify.json").read_text())
MESSAGES = json.loads((FIXTURES / "messages.json").read_text())


def make_run(state: str = "completed", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "train", "uid": "u1", "project": "p1", "iteration": 0, "labels": {}},
        "spec": {"notifications": [], "parameters": {"lr": 0.1}},
        "status": {"state": state, "results": {"val": 5}, "notifications": {}, **status},
    }


def make_notification(condition: str = "", when: list[str] | None = None, name: str = "n1") -> dict[str, Any]:
    return {"kind": "webhook", "name": name, "when": when or ["completed"], "condition": condition}


# --- agreement with mlrun 1.12.1 (fixtures written by tests/fixtures/rules/generate.py) ---


def test_fixtures_cover_the_reference_matrix() -> None:
    ids = {row["id"] for row in SHOULD_NOTIFY}
    assert (
        sum(1 for i in ids if i.startswith("matrix-")) == 36
    )  # 3 when x 3 conditions x 2 states x 2 statuses
    assert any(row["expected"] for row in SHOULD_NOTIFY) and not all(row["expected"] for row in SHOULD_NOTIFY)


@pytest.mark.parametrize("row", SHOULD_NOTIFY, ids=[row["id"] for row in SHOULD_NOTIFY])
def test_evaluate_agrees_with_mlrun_should_notify(row: dict[str, Any]) -> None:
    decision = evaluate(row["run"], row["notification"])
    assert decision.send is row["expected"], decision.reason


@pytest.mark.parametrize("row", MESSAGES, ids=[row["id"] for row in MESSAGES])
def test_compose_message_agrees_with_mlrun(row: dict[str, Any]) -> None:
    assert compose_message(row["run"], row["notification"]) == row["message"]
    assert severity_of(row["notification"]) == row["severity"]


# --- trigger semantics and reasons ---


@pytest.mark.parametrize(
    ("state", "when", "condition", "send", "reason"),
    [
        ("created", ["created"], "", False, "state 'created' never notifies"),
        ("skipped", ["skipped"], "", False, "state 'skipped' never notifies"),
        ("completed", ["error"], "", False, "state 'completed' not in when ['error']"),
        ("completed", ["completed"], "{{ run.status.results.val < 4 }}", False, "condition rendered 'False'"),
        ("completed", ["completed"], "Off", False, "condition rendered 'Off'"),
        ("completed", ["completed"], "{{ run.status.results.val > 4 }}", True, "condition passed"),
        ("completed", ["completed"], "", True, "state 'completed' matched"),
        (
            "aborted",
            ["aborted"],
            "{{ false }}",
            True,
            "state 'aborted' matched (condition applies to completed only)",
        ),
    ],
)
def test_decision_reasons(state: str, when: list[str], condition: str, send: bool, reason: str) -> None:
    assert evaluate(make_run(state), make_notification(condition, when)) == Decision(send, reason)


@pytest.mark.parametrize("status", ["sent", "error"])
def test_non_pending_status_in_run_dict_blocks_resend(status: str) -> None:
    run = make_run(notifications={"n1": {"status": status, "sent_time": None}})
    assert evaluate(run, make_notification()) == Decision(False, f"already {status}")


def test_pending_status_and_other_names_do_not_block() -> None:
    run = make_run(notifications={"n1": {"status": "pending"}, "n2": {"status": "sent"}})
    assert evaluate(run, make_notification()).send is True


def test_per_state_statuses_block_only_their_state() -> None:
    notification = make_notification(when=["running", "completed"])
    statuses = {"running": {"status": "sent"}, "completed": "pending"}
    assert evaluate(make_run("running"), notification, state_statuses=statuses) == Decision(
        False, "already sent for state 'running'"
    )
    assert evaluate(make_run("completed"), notification, state_statuses=statuses).send is True


def test_state_argument_overrides_run_state() -> None:
    notification = make_notification(when=["error"])
    assert evaluate(make_run("completed"), notification).send is False
    assert evaluate(make_run("completed"), notification, state="error").send is True


def test_missing_state_is_unknown_and_never_notifies() -> None:
    run = make_run()
    del run["status"]["state"]
    assert evaluate(run, make_notification(when=["unknown"])) == Decision(
        False, "state 'unknown' never notifies"
    )


def test_child_iterations_are_skipped_unless_configured() -> None:
    run = make_run()
    run["metadata"]["iteration"] = 3
    assert evaluate(run, make_notification()) == Decision(False, "child iteration 3 is not notified")
    assert evaluate(run, make_notification(), notify_iterations=True).send is True


def test_default_when_is_completed() -> None:
    notification = {"name": "n1", "when": None}
    assert evaluate(make_run("completed"), notification).send is True
    assert evaluate(make_run("error"), notification).send is False


class _Model:
    """Stands in for runherald.model objects: anything with to_dict()."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return self._data


def test_objects_with_to_dict_are_accepted() -> None:
    decision = evaluate(_Model(make_run()), _Model(make_notification("{{ notification.name == 'n1' }}")))
    assert decision == Decision(True, "condition passed")
    assert (
        compose_message(_Model(make_run("error")), _Model({"message": "boom"}))
        == "Run failed in project p1: boom"
    )
    with pytest.raises(TypeError):
        evaluate(object(), make_notification())


def test_evaluate_leaves_the_run_untouched() -> None:
    run = make_run()
    before = copy.deepcopy(run)
    evaluate(run, make_notification('{{ run.update({"x": 1}) }}'))
    evaluate(run, make_notification("{{ run.status.results.val > 4 }}"))
    assert run == before


# --- condition errors and the policy ---


def test_render_error_is_decided_at_once_by_policy() -> None:
    notification = make_notification('{{ run["status"]["results"]["missing"] > 4 }}')
    start = time.perf_counter()
    sent = evaluate(make_run(), notification)
    skipped = evaluate(make_run(), notification, condition_error_policy="skip")
    assert time.perf_counter() - start < 1.0
    assert sent.send is True and skipped.send is False
    assert "UndefinedError" in sent.reason and "missing" in sent.reason and "sent by policy" in sent.reason
    assert "skipped by policy" in skipped.reason


def test_unknown_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="condition_error_policy"):
        evaluate(make_run(), make_notification(), condition_error_policy="maybe")


def test_syntax_error_is_a_condition_error() -> None:
    decision = evaluate(make_run(), make_notification("{{ foo( }}"), condition_error_policy="skip")
    assert decision.send is False
    assert decision.reason.startswith("condition error (TemplateSyntaxError")
    assert "\n" not in decision.reason


LOOP = "{%% for %s in range(%d) %%}"
END = "{% endfor %}"


def doubling(start: str, step: str) -> str:
    """A condition that sets ns.v to `step` 64 times, starting from `start`."""
    head = f"{{% set ns = namespace(v={start}) %}}" + LOOP % ("i", 64)
    return head + f"{{% set ns.v = {step} %}}" + END + "{{ ns.v|length }}"


HOSTILE = {
    "nested-range-100000": LOOP % ("i", 100000) + LOOP % ("j", 100000) + LOOP % ("k", 100000) + END * 3,
    "nested-range-10000": LOOP % ("i", 10000) + LOOP % ("j", 10000) + LOOP % ("k", 10000) + END * 3,
    "string-times": '{{ "a" * 10**10 }}',
    "list-times": "{{ [1] * 10**9 }}",
    "list-times-list": "{{ (range(10000)|list) * 10 }}",
    "format-filter-width": '{{ "%999999999s"|format("x") }}',
    "format-filter-star": '{{ "%*s"|format(999999999, "x") }}',
    "percent-width": '{{ "%0999999999d" % 1 }}',
    "str-format-width": '{{ "{:999999999}".format(1) }}',
    "str-format-nested": '{{ "{:{}}".format(1, 999999999) }}',
    "center-filter": '{{ "x"|center(999999999) }}',
    "indent-filter": '{{ ("a\n" * 40000)|indent(100) }}',
    "replace-filter": '{{ ("a" * 50000)|replace("a", "aaaaaaaaaa") }}',
    "join-filter": '{{ range(10000)|join("y" * 50) }}',
    "batch-filter": "{{ [1]|batch(999999999, 0)|list }}",
    "ljust-method": '{{ "a".ljust(10**9) }}',
    "bytes-center": '{{ "a".encode().center(10**8) }}',
    "expandtabs": '{{ ("\t" * 1000).expandtabs(1000) }}',
    "replace-method": '{{ ("a" * 50000).replace("a", "aaaaaaaaaa") }}',
    "join-method": '{{ ("y" * 50).join(range(10000)|map("string")) }}',
    "doubling-concat": doubling('"ab"', "ns.v ~ ns.v"),
    "doubling-plus": doubling('["ab"]', "ns.v + ns.v"),
    "escape-chain": doubling('"&" * 1000', "ns.v|forceescape"),
    "int-squaring": doubling("3", "ns.v * ns.v"),
    "literal-fanout": '{% set x = "a" * 90000 %}{% set y = [x, x, x, x, x, x, x, x, x, x] %}{{ y|length }}',
    "power": "{{ 7 ** 10000000 }}",
    "macro-fanout": "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
    "{{ f(40) }}",
    "loop-body-text": LOOP % ("i", 10000) + LOOP % ("j", 9) + "x" * 2000 + END * 2,
    "macro-body-text": "{% macro m() %}" + LOOP % ("i", 10000) + "y" * 1000 + END + "{% endmacro %}"
    "{% for i in range(10) %}{% set z = m() %}{% endfor %}",
    "big-output": LOOP % ("i", 10000) + "z" * 100 + END,
    "recursive-loop": "{% for x in range(3) recursive %}{{ loop(range(3)) }}{% endfor %}",
    "lipsum": "{{ lipsum(10**6) }}",
}


@pytest.mark.parametrize("condition", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_conditions_fail_fast_with_a_reason(condition: str) -> None:
    start = time.perf_counter()
    sent = evaluate(make_run(), make_notification(condition))
    skipped = evaluate(make_run(), make_notification(condition), condition_error_policy="skip")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"took {elapsed:.2f} s"
    assert sent.send is True and sent.reason.startswith("condition error (")
    assert skipped.send is False and skipped.reason.startswith("condition error (")


ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__ }}",
    "{{ run.__class__ }}",
    "{{ run['__class__'] }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ run.items.__self__ }}",
    "{{ namespace.__init__.__globals__['os'] }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
    "{{ run.update({'a': 1}) }}",
    "{{ run.status.results.pop('val') }}",
    "{% set x = run.spec.notifications.append(1) %}",
]


@pytest.mark.parametrize("condition", ESCAPES)
def test_sandbox_escapes_are_errors_not_leaks(condition: str) -> None:
    decision = evaluate(make_run(), make_notification(condition), condition_error_policy="skip")
    assert decision.send is False
    assert "SecurityError" in decision.reason or "UndefinedError" in decision.reason
    assert "<class" not in decision.reason and "built-in" not in decision.reason


@pytest.mark.parametrize(
    ("condition", "rendered"),
    [
        ("{% for k, v in run.status.results|dictsort %}{{ k }}={{ v }};{% endfor %}", "a=1;val=5;"),
        ("{{ run.status.results.keys()|sort|join(',') }}", "a,val"),
        ("{{ run.metadata.name ~ '-' ~ run.metadata.uid }}", "train-u1"),
        ('{{ "%s-%03d"|format("x", 7) }}', "x-007"),
        ('{{ "{}:{:>4}".format("v", 5) }}', "v:   5"),
        ("{{ ('ab' * 3)|upper }}", "ABABAB"),
        ("{{ [1, 2] + [3] }}", "[1, 2, 3]"),
        ("{{ range(5)|sum }}", "10"),
        ("{{ 2 ** 10 }}", "1024"),
        (
            "{% set ns = namespace(n=0) %}"
            + LOOP % ("i", 100)
            + "{% set ns.n = ns.n + i %}"
            + END
            + "{{ ns.n }}",
            "4950",
        ),
        ("{% macro twice(x) %}{{ x }}{{ x }}{% endmacro %}{{ twice('no') }}", "nono"),
        ("{{ run.spec.parameters.lr|round(2) }}", "0.1"),
        ("{{ 'a,b'.split(',')|length }}", "2"),
    ],
)
def test_ordinary_conditions_render_as_in_jinja(condition: str, rendered: str) -> None:
    run = make_run()
    run["status"]["results"]["a"] = 1
    assert render_condition(condition, {"run": run, "notification": make_notification()}) == rendered


def test_custom_limits_apply() -> None:
    condition = "{% for i in range(50) %}{{ i }}{% endfor %}"
    assert evaluate(make_run(), make_notification(condition)).reason == "condition passed"
    tight = evaluate(make_run(), make_notification(condition), limits=ConditionLimits(max_steps=10))
    assert "render steps" in tight.reason


def test_conditions_are_compiled_once() -> None:
    source = "{{ run.status.results.val == 5 }} and cached"
    assert compile_condition(source) is compile_condition(source)


@pytest.mark.parametrize(
    ("source", "valid"),
    [
        ("", True),
        ('{{ run["status"]["results"]["val"] > 4 }}', True),
        ("{{ foo( }}", False),
        ("{% for x in y %}", False),
        ("{% for x in range(3) recursive %}{{ loop(x) }}{% endfor %}", False),
        ("x" * 20_000, False),
    ],
)
def test_validate_condition(source: str, valid: bool) -> None:
    error = validate_condition(source)
    assert (error is None) is valid
    if not valid:
        assert isinstance(error, str) and error


# --- messages, severity, redaction, uniqueness, identity ---


def test_severity_defaults_to_info() -> None:
    assert severity_of({}) == "info"
    assert severity_of({"severity": None}) == "info"
    assert severity_of({"severity": "error"}) == "error"


def test_compose_message_state_override() -> None:
    assert compose_message(make_run("completed"), {}, state="running") == "Run started in project p1"


def test_redact_run_masks_secret_values_but_keeps_references() -> None:
    run = make_run()
    run["spec"]["notifications"] = [
        {
            "name": "a",
            "secret_params": {"webhook": "https://hooks/x", "other_param": "v"},
            "params": {"k": "v"},
        },
        {"name": "b", "secret_params": {"secret": "mlrun.notifications.abc"}},
        {"name": "c", "secret_params": {"secret": "k", "webhook": "w"}},
        {"name": "d", "secret_params": {}},
        {"name": "e"},
    ]
    original = copy.deepcopy(run)
    redacted = redact_run(run)
    notifications = redacted["spec"]["notifications"]
    assert notifications[0]["secret_params"] == {"webhook": "REDACTED", "other_param": "REDACTED"}
    assert notifications[0]["params"] == {"k": "v"}
    assert notifications[1]["secret_params"] == {"secret": "mlrun.notifications.abc"}
    assert notifications[2]["secret_params"] == {"secret": "REDACTED", "webhook": "REDACTED"}
    assert notifications[3]["secret_params"] == {} and "secret_params" not in notifications[4]
    assert run == original


def test_check_unique_names() -> None:
    assert check_unique_names([{"name": "n1"}, {"name": "n2"}]) is None
    assert check_unique_names([{"name": "n1"}, _Model({"name": "n1"})]) == "Notification names must be unique"
    assert check_unique_names([{}, {"name": ""}]) == "Notification names must be unique"
    assert check_unique_names([]) is None


def test_delivery_id_is_the_delivery_modules() -> None:
    assert rules.delivery_id is delivery.delivery_id
    assert rules.delivery_id("p", "u", "n1", "completed") != rules.delivery_id("p", "u", "n1", "error")
