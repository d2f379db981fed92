"""runherald.model against reference output recorded from mlrun 1.12.1 (tests/fixtures/model/generate.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from runherald import model
from runherald.errors import InvalidArgumentError, MLRunInvalidArgumentError, RunheraldValueError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "model"
UID = "0123456789abcdef0123456789abcdef"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def capture(fn: Callable[[], Any]) -> dict[str, Any]:
    """Same shape as the generator's capture: the result, or the error kind and message."""
    try:
        result = fn()
        return {"result": result.to_dict() if hasattr(result, "to_dict") else result}
    except InvalidArgumentError as exc:
        return {"error": "InvalidArgumentError", "message": str(exc)}
    except RunheraldValueError as exc:
        return {"error": "RunheraldValueError", "message": str(exc)}
    except ValueError as exc:
        return {"error": "ValueError", "message": str(exc)}
    except TypeError as exc:
        return {"error": "TypeError", "message": str(exc)}


def outcome_of(case: dict[str, Any]) -> dict[str, Any]:
    return {key: case[key] for key in ("result", "error", "message") if key in case}


def normalised(run_dict: dict[str, Any]) -> dict[str, Any]:
    spec = run_dict.get("spec", {})
    if "outputs" in spec:
        spec["outputs"] = sorted(spec["outputs"])
    return json.loads(json.dumps(run_dict))


def build_run(case: dict[str, Any]) -> model.RunObject:
    run = model.RunObject.from_template(model.new_task(**case["task"]))
    run.metadata.uid = UID
    for key, value in case["labels"].items():
        run.set_label(key, value)
    run.spec.notifications = [model.Notification(**notification) for notification in case["notifications"]]
    run.status = model.RunStatus(**case["status"])
    return run


RUN_CASES = [case for case in load("runs.json") if "json" in case]
STATUS_CASES = [case for case in load("runs.json") if "json" not in case]


# ------------------------------------------------------------------------------------------- runs


@pytest.mark.parametrize("case", RUN_CASES, ids=lambda case: case["name"])
def test_run_to_dict_matches_mlrun(case: dict[str, Any]) -> None:
    run = build_run(case)
    assert normalised(run.to_dict()) == case["dict"]
    assert normalised(json.loads(run.to_json())) == case["json"]
    assert normalised(run.to_dict(strip=True)) == case["strip_dict"]
    assert normalised(json.loads(run.to_json(exclude=["status"]))) == case["json_exclude_status"]


@pytest.mark.parametrize("case", RUN_CASES, ids=lambda case: case["name"])
def test_to_json_can_leave_out_notification_params(case: dict[str, Any]) -> None:
    run = build_run(case)
    without = normalised(json.loads(run.to_json(exclude_notifications_params=True)))
    assert without == case["json_without_notification_params"]
    # The params are only left out of the JSON, not taken off the run.
    assert [n.params for n in run.spec.notifications] == [n.get("params", {}) for n in case["notifications"]]


@pytest.mark.parametrize("case", RUN_CASES + STATUS_CASES, ids=lambda case: case["name"])
def test_mlrun_run_dict_round_trips(case: dict[str, Any]) -> None:
    run = model.RunObject.from_dict(case["dict"])
    assert normalised(run.to_dict()) == case["dict"]
    assert all(isinstance(n, model.Notification) for n in run.spec.notifications)
    assert len(run.spec.notifications) == len(case["dict"].get("spec", {}).get("notifications", []))


@pytest.mark.parametrize("case", RUN_CASES + STATUS_CASES, ids=lambda case: case["name"])
def test_run_accessors_match_mlrun(case: dict[str, Any]) -> None:
    run = model.RunObject.from_dict(case["dict"])
    observed = case["observed"]
    assert run.error == observed["error"]
    assert run.status.is_failed() == observed["is_failed"]
    if "outputs" in observed:
        assert run.uid() == observed["uid"]
        assert run.outputs == observed["outputs"]
        assert run.output("acc") == observed["output_acc"]
        assert run.output("missing") == observed["output_missing"]
        assert run.metadata.is_workflow_runner() == observed["is_workflow_runner"]
        assert bool(run.spec.is_hyper_job()) == observed["is_hyper_job"]
    if "state" in observed:
        assert run.state() == observed["state"]


def test_state_never_calls_a_database() -> None:
    run = model.RunObject.from_dict({"status": {"state": "running"}})
    assert run.state() == "running"
    run.status.state = ""
    assert run.state() == "unknown"
    assert model.RunObject().state() == "created"


def test_run_status_fields_survive_from_dict() -> None:
    status = model.RunStatus.from_dict(
        {
            "state": "error",
            "retry_count": 3,
            "notifications": {"n1": {"status": "error", "reason": "Exception error: 500"}},
            "last_update": "2025-01-02T03:04:05+00:00",
        }
    )
    assert status.retry_count == 3
    assert status.notifications["n1"]["status"] == "error"
    assert status.last_update == "2025-01-02T03:04:05+00:00"
    assert model.RunStatus(retry_count=0).retry_count is None


def test_run_outputs_from_artifacts() -> None:
    artifact: dict[str, Any] = {
        "kind": "model",
        "metadata": {"key": "m", "project": "p", "tag": "v1", "iter": 0, "tree": "t1"},
        "spec": {"db_key": "train_m"},
    }
    latest = {**artifact, "metadata": {**artifact["metadata"], "tag": "latest"}}
    plain = {"kind": "", "metadata": {"key": "f"}, "spec": {"target_path": "s3://b/f.txt"}}
    run = model.RunObject.from_dict(
        {
            "metadata": {"project": "p"},
            "status": {"results": {"a": 1}, "artifacts": [artifact, latest, plain]},
        }
    )
    assert run.outputs == {"a": 1, "m": "store://models/p/train_m:v1@t1", "f": "s3://b/f.txt"}
    assert run.output("m") == "store://models/p/train_m:v1@t1"
    uris = model.RunObject.from_dict({"status": {"artifact_uris": {"x": "store://artifacts/p/x"}}})
    assert uris.outputs == {"x": "store://artifacts/p/x"}
    assert uris.output("x") == "store://artifacts/p/x"


def test_run_uri_helpers() -> None:
    uri = model.RunObject.create_uri("p", "u1", 2, tag="t")
    assert uri == "p@u1#2:t"
    assert model.RunObject.parse_uri(uri) == ("p", "u1", "2", "t")
    assert model.RunObject.parse_uri("p@u1#0") == ("p", "u1", "0", None)
    with pytest.raises(ValueError, match="Uri not in supported format"):
        model.RunObject.parse_uri("nope")


# -------------------------------------------------------------------------------- templates & spec


@pytest.mark.parametrize("case", load("templates.json"), ids=lambda case: case["name"])
def test_run_template_builders_match_mlrun(case: dict[str, Any]) -> None:
    builders: dict[str, Callable[[], model.RunTemplate]] = {
        "with_params": lambda: model.new_task("t").with_params(a=1, b="x"),
        "with_input": lambda: model.new_task("t").with_input("data", "s3://b/k").with_input("d2", "/p"),
        "with_secrets": lambda: (
            model.new_task("t", project="pr")
            .with_secrets("env", "A,B")
            .with_secrets("inline", {"k": "v"})
            .with_secrets("vault", ["s1", "s2"])
        ),
        "set_label": lambda: model.new_task("t").set_label("n", 3).set_label("s", "v"),
        "with_hyper_params": lambda: model.new_task("t").with_hyper_params(
            {"p": [1, 2]}, selector="max.acc", strategy="list", parallel_runs=4
        ),
        "with_hyper_params_random": lambda: model.new_task("t").with_hyper_params(
            {"p": [1, 2]}, strategy="random", max_iterations=5
        ),
        "with_hyper_params_bad_strategy": lambda: model.new_task("t").with_hyper_params(
            {"p": [1]}, strategy="x"
        ),
        "with_hyper_params_max_iterations": lambda: model.new_task("t").with_hyper_params(
            {"p": [1]}, strategy="grid", max_iterations=3
        ),
        "with_param_file": lambda: model.new_task("t").with_param_file("s3://b/p.csv", selector="min.loss"),
        "new_task_base": lambda: model.new_task(
            "child", base=model.new_task("base", project="bp", params={"a": 1}, outputs=["o"], handler="h")
        ),
        "new_task_bad_returns": lambda: model.new_task("t", returns=["a:b:c"]),
        "new_task_bad_outputs": lambda: model.new_task("t", outputs="o"),  # type: ignore[arg-type]
    }
    outcome = capture(lambda: normalised(builders[case["name"]]().to_dict()))
    if "error" in case:
        assert outcome["error"] == case["error"]
        if case["name"] != "new_task_bad_returns":  # MLRun's log-hint parser words it its own way
            assert outcome["message"] == case["message"]
    else:
        assert outcome == outcome_of(case)


def test_new_task_base_is_copied_not_shared() -> None:
    base = model.new_task("base", params={"a": 1})
    child = model.new_task("child", base=base)
    child.spec.parameters["b"] = 2
    assert base.spec.parameters == {"a": 1}
    assert base.metadata.name == "base"


def test_run_spec_input_and_output_helpers_match_mlrun() -> None:
    expected = load("spec.json")
    spec = model.RunSpec(inputs={"a : int": "/a", "b": "/b", " c :  list[str] ": ["/c1", "/c2"]})
    spec.extract_type_hints_from_inputs()
    assert {"inputs": spec.inputs, "inputs_type_hints": spec.inputs_type_hints} == expected[
        "extract_type_hints"
    ]
    bad = model.RunSpec(inputs={"a:b:c": "/x"})
    assert capture(bad.extract_type_hints_from_inputs) == expected["extract_bad"]
    joined = model.RunSpec.join_outputs_and_returns(["a", "b"], ["b", "c : file", "3*d"])
    assert sorted(joined) == expected["join"]
    assert model.RunSpec.join_outputs_and_returns([], None) == expected["join_empty"]
    hinted = model.RunSpec(inputs={"x": "/x"}, inputs_type_hints={"x": "str"})
    assert hinted.to_dict() == expected["inputs_type_hints_ctor"]
    assert capture(lambda: model.RunSpec(inputs=["x"])) == expected["inputs_not_dict"]  # type: ignore[arg-type]


def test_run_spec_notification_loading_errors_match_mlrun() -> None:
    expected = load("spec.json")
    assert (
        capture(lambda: model.RunSpec.from_dict({"notifications": "x"})) == expected["notifications_not_list"]
    )
    without_name = capture(lambda: model.RunSpec.from_dict({"notifications": [{"kind": "console"}]}))
    assert without_name == expected["notification_without_name"]


def test_notification_list_keeps_duplicates_for_the_uniqueness_check() -> None:
    spec = model.RunSpec.from_dict({"notifications": [{"name": "n1", "kind": "console"}, {"name": "n1"}]})
    assert len(spec.notifications) == 2
    with pytest.raises(MLRunInvalidArgumentError, match=r"^Notification names must be unique$"):
        model.Notification.validate_notification_uniqueness(spec.notifications)
    assert spec.notifications["n1"].kind == "console"
    assert spec.notifications[1].kind == "slack"
    assert spec.notifications.keys() == ["n1", "n1"]


# ------------------------------------------------------------------------------------ notifications

NOTIFICATIONS = load("notifications.json")


def test_notification_defaults_match_mlrun() -> None:
    """Reference §5 case 57."""
    notification = model.Notification()
    expected = NOTIFICATIONS["defaults"]
    for field, value in expected.items():
        assert getattr(notification, field) == value, field
    assert notification.kind == "slack" and notification.severity == "info"
    assert notification.when == ["completed"] and notification.name == "" and notification.condition == ""
    assert json.loads(json.dumps(notification.to_dict())) == NOTIFICATIONS["defaults_dict"]
    assert json.loads(notification.to_json()) == NOTIFICATIONS["defaults_json"]
    # MLRun's key order comes from a set, so compare the YAML's content.
    assert yaml.safe_load(notification.to_yaml()) == NOTIFICATIONS["defaults_yaml"]


@pytest.mark.parametrize(
    "case",
    NOTIFICATIONS["construct"],
    ids=lambda case: "-".join(f"{k}={v!r:.20}" for k, v in case["kwargs"].items()),
)
def test_notification_validation_matches_mlrun(case: dict[str, Any]) -> None:
    """Reference §5 case 56: schema checks by hand, same accept/reject decisions and message."""
    outcome = capture(lambda: json.loads(json.dumps(model.Notification(**case["kwargs"]).to_dict())))
    assert outcome == outcome_of(case)


@pytest.mark.parametrize("case", NOTIFICATIONS["sizes"], ids=lambda case: f"{case['field']}-{case['length']}")
def test_secret_params_size_limit_matches_mlrun(case: dict[str, Any]) -> None:
    """Reference §5 case 61: only secret_params count, the limit is 900 KiB, the message says 1 MB."""
    kwargs: dict[str, Any] = {case["field"]: {"b": "x" * case["length"]}}
    outcome = capture(lambda: len(json.dumps(model.Notification(**kwargs).to_dict())))
    assert outcome == outcome_of(case)


def test_notification_from_dict_does_not_validate() -> None:
    loaded = model.Notification.from_dict({"kind": "bogus", "when": "completed", "name": "n", "extra": 1})
    expected = NOTIFICATIONS["from_dict_unvalidated"]
    assert loaded.to_dict() == expected["dict"]
    assert (loaded.when, loaded.kind) == (expected["when"], expected["kind"])
    with pytest.raises(InvalidArgumentError, match="Invalid notification object"):
        loaded.validate_notification()


@pytest.mark.parametrize("case", NOTIFICATIONS["uniqueness"], ids=lambda case: repr(case["names"]))
def test_notification_uniqueness_matches_mlrun(case: dict[str, Any]) -> None:
    """Reference §5 case 58."""
    notifications = [model.Notification(kind="console", name=name) for name in case["names"]]
    outcome = capture(lambda: model.Notification.validate_notification_uniqueness(notifications))
    assert outcome == outcome_of(case)


@pytest.mark.parametrize("case", load("notification_params.json"))
def test_notification_params_validation_matches_mlrun(case: dict[str, Any], monkeypatch: Any) -> None:
    """Reference §5 cases 59 and 60, and mail's rules (§4.4)."""
    monkeypatch.delenv("SLACK_WEBHOOK", raising=False)
    notification = model.Notification(
        kind=case["kind"], name="n", params=case["params"], secret_params=case["secret_params"]
    )
    outcome = capture(lambda: notification.validate_notification_params(case.get("defaults")))
    assert outcome == outcome_of(case)


def test_slack_webhook_falls_back_to_the_environment(monkeypatch: Any) -> None:
    notification = model.Notification(kind="slack", name="n", params={"webhook": None})
    monkeypatch.setenv("SLACK_WEBHOOK", "https://hooks.example/x")
    notification.validate_notification_params()
    monkeypatch.delenv("SLACK_WEBHOOK")
    with pytest.raises(ValueError, match=r"^Parameter 'webhook' is required for SlackNotification$"):
        notification.validate_notification_params()


def test_mail_validation_does_not_change_the_notification() -> None:
    params = {"server_host": "h", "sender_address": "a@example.com", "email_addresses": ["b@example.com"]}
    notification = model.Notification(kind="mail", name="m", params=params)
    notification.validate_notification_params()
    assert notification.params == {
        "server_host": "h",
        "sender_address": "a@example.com",
        "email_addresses": ["b@example.com"],
    }


@pytest.mark.parametrize("case", load("secret_params.json"), ids=lambda case: repr(case["secret_params"]))
def test_secret_params_from_project_secret_match_mlrun(case: dict[str, Any], monkeypatch: Any) -> None:
    """Reference §5 case 62, with the project secret read from the environment."""
    monkeypatch.setenv("RUNHERALD_SECRET_FIXTURE_JSON", '{"webhook": "Hello"}')
    monkeypatch.setenv("RUNHERALD_SECRET_FIXTURE_TEXT", "Hello")
    monkeypatch.delenv("RUNHERALD_SECRET_FIXTURE_UNSET", raising=False)
    notification = model.Notification(kind="webhook", name="n", secret_params=case["secret_params"])
    outcome = capture(notification.enrich_unmasked_secret_params_from_project_secret)
    assert outcome == outcome_of(case)
    assert notification.secret_params == case["after"]


def test_secret_params_from_an_explicit_secret_store() -> None:
    notification = model.Notification(kind="webhook", name="n", secret_params={"secret": "k"})
    notification.enrich_unmasked_secret_params_from_project_secret({"k": '{"url": "https://u"}'})
    assert notification.secret_params == {"url": "https://u"}


def test_enums_and_states() -> None:
    assert {kind.value for kind in model.NotificationKind} == {
        "slack",
        "mail",
        "webhook",
        "console",
        "git",
        "ipython",
    }
    assert [s.value for s in model.NotificationSeverity] == ["info", "debug", "verbose", "warning", "error"]
    assert [s.value for s in model.NotificationStatus] == ["pending", "sent", "error"]
    assert model.RunStates.terminal_states() == ["completed", "error", "aborted", "skipped"]
    assert model.NotificationLimits.max_params_size.value == 900 * 1024
    assert issubclass(MLRunInvalidArgumentError, ValueError)


def test_model_obj_copy_is_deep() -> None:
    notification = model.Notification(kind="webhook", name="n", params={"url": "u"})
    clone = notification.copy()
    clone.params["url"] = "other"
    assert notification.params == {"url": "u"}
    assert notification.to_dict(fields=["name", "params"]) == {"name": "n", "params": {"url": "u"}}
    assert notification.to_dict(exclude=["params", "when", "kind"]) == {
        "name": "n",
        "message": "",
        "severity": "info",
        "condition": "",
    }


# ------------------------------------------------------------------------------------ feature store


@pytest.mark.parametrize(
    "case", load("target_paths.json"), ids=lambda case: f"{case['base_path']}-{case['run_id']}"
)
def test_target_path_object_matches_mlrun(case: dict[str, Any]) -> None:
    def build() -> dict[str, Any]:
        target = model.TargetPathObject(case["base_path"], case["run_id"], case["is_single_file"])
        return {
            "templated": target.get_templated_path(),
            "absolute": target.get_absolute_path("proj"),
            "absolute_no_project": capture(lambda: target.get_absolute_path()),
        }

    assert capture(build) == outcome_of(case)


def test_feature_store_specs_match_mlrun() -> None:
    expected = load("feature_store.json")
    source = model.DataSource(
        "src",
        "s3://b/data.csv",
        {"a": "1"},
        key_field="id",
        time_field="ts",
        schedule="0 * * * *",
        start_time="2025-01-01T00:00:00",
        end_time=None,
    )
    source.online = True
    source.workers = 2
    assert source.to_dict() == expected["source"]
    assert model.DataSource().to_dict() == expected["source_default"]
    target_base = model.DataTargetBase(
        "parquet",
        "t",
        "s3://b/t",
        {"x": "y"},
        after_step="s",
        partitioned=True,
        key_bucketing_number=4,
        partition_cols=["a"],
        time_partitioning_granularity="hour",
        max_events=10,
        flush_after_seconds=5,
        storage_options={"k": "v"},
        schema={"f": "int"},
    )
    target_base.run_id = "run-9"
    assert target_base.to_dict() == expected["target_base"]
    assert model.DataTargetBase().to_dict() == expected["target_base_default"]
    target = model.DataTarget("csv", "t2", "s3://b/t2.csv", online=False)
    target.status = "ready"
    target.size = 10
    target.producer = {"kind": "api", "name": "n", "uri": "u", "owner": "o", "sources": {"s": "1"}}
    assert target.to_dict() == expected["target"]
    assert model.DataTarget().to_dict() == expected["target_default"]
    assert isinstance(target.producer, model.FeatureSetProducer)
    loaded = model.DataTargetBase.from_dict(
        {"name": "old", "kind": "parquet", "path": "s3://x", "run_id": "r", "bogus": 1},
        deprecated_fields={"path": "kind"},
    )
    assert loaded.to_dict() == expected["target_from_deprecated"]
    producer = model.FeatureSetProducer("job", "n", "store://x", "me", {"a": "b"})
    assert producer.to_dict() == expected["producer"]
    stream_path = model.DataTargetBase("stream", "s", "v3io:///s").get_path()
    assert stream_path is not None and stream_path.get_templated_path() == expected["stream_path"]
    parquet_path = target_base.get_path()
    assert parquet_path is not None and parquet_path.get_templated_path() == expected["parquet_path"]
    assert model.DataTargetBase("parquet").get_path() is expected["no_path"]


def test_data_source_serialises_datetimes_as_iso() -> None:
    start = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    source = model.DataSource("s", start_time=start)
    assert source.to_dict()["start_time"] == "2025-01-02T03:04:05+00:00"
    assert source.start_time is start


def test_a_project_secret_reads_no_variable_outside_runherald_secret(monkeypatch: Any) -> None:
    monkeypatch.setenv("RUNHERALD_SEAL_KEY", '{"url": "https://leak.example"}')
    monkeypatch.setenv("RUNHERALD_SECRET_RUNHERALD_SEAL_KEY", '{"url": "https://meant.example"}')
    notification = model.Notification(
        kind="webhook", name="n", secret_params={"secret": "RUNHERALD_SEAL_KEY"}
    )
    notification.enrich_unmasked_secret_params_from_project_secret()
    assert notification.secret_params == {"url": "https://meant.example"}
    monkeypatch.delenv("RUNHERALD_SECRET_RUNHERALD_SEAL_KEY")
    untouched = model.Notification(kind="webhook", name="n", secret_params={"secret": "RUNHERALD_SEAL_KEY"})
    untouched.enrich_unmasked_secret_params_from_project_secret()
    assert untouched.secret_params == {"secret": "RUNHERALD_SEAL_KEY"}
