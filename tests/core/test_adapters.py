"""The shapes a run arrives in (runherald.adapters): each adapter, each refusal reason, lists, hops."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest

from runherald.adapters import (
    ADAPTERS,
    HOPS_HEADER,
    NAMED_ONLY,
    TooManyHops,
    Unrecognised,
    adapt,
    headers_of,
    hops_from,
    hops_of,
    next_hops,
    stamp_hops,
)
from runherald.admission import check_runs
from runherald.alerting import Receiver, Rule
from runherald.evaluation import candidates
from runherald.events import NOT_A_RUN, NOT_JSON, InvalidEvent, validate_run
from runherald.matchers import parse_matcher
from runherald.rule_index import AlertConfig

HOOK = {"kind": "webhook", "name": "hook", "when": ["completed"], "params": {"url": "https://x.example/h"}}
CE = {"specversion": "1.0", "id": "e1", "source": "ci", "type": "job.state"}


def run(project: str = "p", uid: str = "u1", state: str = "completed", **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"project": project, "uid": uid, "name": "train"},
        "spec": {"notifications": [HOOK]},
        "status": {"state": state},
        **extra,
    }


def webhook_body(*runs: Any) -> dict[str, Any]:
    return {"message": "Run completed", "severity": "info", "runs": list(runs)}


def js(value: Any) -> bytes:
    return orjson.dumps(value)


def refused(body: bytes, headers: dict[str, str] | None = None, **kwargs: Any) -> Unrecognised:
    with pytest.raises(Unrecognised) as caught:
        adapt(body, headers, **kwargs)
    return caught.value


def test_the_adapters_are_tried_in_the_documented_order() -> None:
    assert list(ADAPTERS)[:4] == ["cloudevents", "mlrun-webhook", "mlrun-run", "generic"]


# -- mlrun-run -------------------------------------------------------------------------------------------


def test_a_run_dict_is_itself() -> None:
    adapted = adapt(js(run()))
    assert adapted.adapter == "mlrun-run"
    assert adapted.runs == [run()]


def test_a_run_dict_without_project_takes_the_default_project() -> None:
    bare = run()
    del bare["metadata"]["project"]
    assert adapt(js(bare), project="team").runs[0]["metadata"]["project"] == "team"
    error = refused(js(bare))
    assert error.reasons["mlrun-run"] == "metadata.project is missing or not a non-empty string"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"metadata": {"project": "p", "uid": "u"}}, "not a run dict (needs a metadata object and a status)"),
        ({"metadata": "x", "status": {}}, "not a run dict (needs a metadata object and a status)"),
        (run(uid="a/b"), "metadata.uid must not contain '/'"),
        (run(status={"state": ""}), "status.state is missing or not a non-empty string"),
        ([1], "a run dict must be a JSON object, not a number"),
    ],
)
def test_mlrun_run_refusals(record: Any, reason: str) -> None:
    assert refused(js(record), adapter="mlrun-run").reasons == {"mlrun-run": reason}


# -- mlrun-webhook ---------------------------------------------------------------------------------------


def test_an_mlrun_webhook_body_gives_its_runs_marked_as_notified_by_mlrun() -> None:
    git = {"kind": "git", "name": "g", "params": {"repo": "o/r"}}  # a kind runherald cannot send
    mlrun_run = run(uid="u2", spec={"notifications": [git, HOOK]})
    adapted = adapt(js(webhook_body(run(), mlrun_run)))
    assert adapted.adapter == "mlrun-webhook"
    assert [r["metadata"]["uid"] for r in adapted.runs] == ["u1", "u2"]
    for r in adapted.runs:
        assert r["runherald"] == {"adapter": "mlrun-webhook", "notified_by_source": True}
        validate_run(r)
    check_runs(adapted.runs)  # its own notifications are not runherald's to check: MLRun sent them
    secret = run(uid="u3", spec={"notifications": [{**HOOK, "secret_params": {"token": "hush"}}]})
    (kept,) = adapt(js(webhook_body(secret))).runs
    assert kept["spec"]["notifications"] == [HOOK]  # never sent again: its secrets are not kept


def test_mlrun_webhook_runs_missing_fields_are_filled_or_refused() -> None:
    sparse = {"metadata": {"uid": "u9", "labels": None}, "status": {"state": "error"}}
    (filled,) = adapt(js(webhook_body(sparse)), project="default").runs
    assert filled["metadata"] == {"uid": "u9", "project": "default"}
    assert filled["spec"] == {}
    error = refused(js(webhook_body(sparse)))
    assert (
        error.reasons["mlrun-webhook"]
        == "runs[0].metadata.project is missing and there is no default project"
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"message": "cpu high", "severity": "high"},
            "an MLRun webhook body without runs (an alert or a plain message) has no run",
        ),
        ({"foo": 1}, "not an MLRun webhook body (needs message, severity and runs)"),
        ({**run(), "runs": []}, "not an MLRun webhook body: it has metadata/status, as a run dict does"),
        (webhook_body() | {"runs": {"a": 1}}, "runs must be a list of run dicts, not an object"),
        (webhook_body(), "runs is empty"),
        (webhook_body("x"), "runs[0] must be a run dict, not a string"),
        (webhook_body({"status": {"state": "completed"}}), "runs[0].metadata is missing or not an object"),
        (webhook_body(run(), {"metadata": {"uid": "u", "project": "p"}}), "runs[1].status.state is missing"),
        (webhook_body(run(uid="a/b")), "runs[0]: metadata.uid must not contain '/'"),
        (webhook_body(run(spec=[])), "runs[0].spec must be an object, not an array"),
        (
            webhook_body({"metadata": {"uid": "u", "project": 3}, "status": {"state": "completed"}}),
            "runs[0].metadata.project must be a string",
        ),
        ("text", "an MLRun webhook body must be a JSON object, not a string"),
    ],
)
def test_mlrun_webhook_refusals(body: Any, reason: str) -> None:
    assert refused(js(body), adapter="mlrun-webhook").reasons["mlrun-webhook"] == reason


def test_candidates_skip_the_own_notifications_of_a_run_its_source_notified_but_apply_rules() -> None:
    alerts = AlertConfig.from_objects(
        [
            Receiver("ops", "webhook", {"url": "https://ops.example/h"}),
            Rule("all", (parse_matcher('project="p"'),), ("ops",), ("completed",)),
        ]
    )
    plain = candidates(run(), alerts)
    assert [c.name for c in plain] == ["hook", "all/ops"]
    (marked,) = adapt(js(webhook_body(run()))).runs
    assert [c.name for c in candidates(marked, alerts)] == ["all/ops"]
    assert candidates(marked, None) == []
    assert [c.name for c in candidates({**run(), "runherald": "junk"}, None)] == ["hook"]


# -- generic ---------------------------------------------------------------------------------------------


def test_the_generic_shape_becomes_a_run_dict() -> None:
    record = {
        "project": "ci",
        "uid": "build-7",
        "name": "nightly",
        "state": "error",
        "results": {"tests": 120},
        "labels": {"branch": "main", "attempt": 2},
        "error": "3 tests failed",
        "last_update": "2026-12-05T08:00:00+00:00",
        "url": "ignored",
    }
    adapted = adapt(js(record))
    assert adapted.adapter == "generic"
    assert adapted.runs == [
        {
            "metadata": {
                "project": "ci",
                "uid": "build-7",
                "name": "nightly",
                "labels": {"branch": "main", "attempt": "2"},
            },
            "spec": {},
            "status": {
                "state": "error",
                "results": {"tests": 120},
                "error": "3 tests failed",
                "last_update": "2026-12-05T08:00:00+00:00",
            },
        }
    ]


def test_a_generic_record_without_project_takes_the_default_one() -> None:
    (only,) = adapt(b'{"uid": "1", "state": "running"}', project="sched").runs
    assert only == {"metadata": {"project": "sched", "uid": "1"}, "spec": {}, "status": {"state": "running"}}


@pytest.mark.parametrize(
    ("record", "reason", "project"),
    [
        ({"state": "running"}, "uid is missing or not a non-empty string", "d"),
        ({"uid": 7, "state": "running"}, "uid is missing or not a non-empty string", "d"),
        ({"uid": "1"}, "state is missing or not a non-empty string", "d"),
        ({"uid": "1", "state": "running"}, "project is missing and there is no default project", ""),
        ({"uid": "1", "state": "running", "project": "a/b"}, "metadata.project must not contain '/'", ""),
        ({"uid": "1", "state": "running", "labels": ["x"]}, "labels must be an object", "d"),
        ({"uid": "1", "state": "running", "results": 3}, "results must be an object", "d"),
        (
            {"uid": "1", "state": "x", "status": {}},
            "not the generic shape: it has metadata/status (a run dict's fields)",
            "d",
        ),
        (None, "a generic run must be a JSON object, not null", "d"),
    ],
)
def test_generic_refusals(record: Any, reason: str, project: str) -> None:
    assert refused(js(record), project=project).reasons["generic"] == reason


# -- cloudevents -----------------------------------------------------------------------------------------


def test_a_structured_cloudevent_carries_any_other_shape_as_data() -> None:
    generic = {"project": "ci", "uid": "b1", "state": "running"}
    adapted = adapt(js({**CE, "time": "2026-12-05T08:00:00Z", "data": generic}))
    assert adapted.adapter == "cloudevents"
    assert adapted.runs[0]["status"] == {"state": "running", "last_update": "2026-12-05T08:00:00Z"}
    assert adapt(js({**CE, "data": run()})).runs == [run()]
    (mlrun,) = adapt(
        js({**CE, "data": webhook_body(run())}), {"Content-Type": "application/cloudevents+json"}
    ).runs
    assert mlrun["runherald"]["notified_by_source"] is True
    two = adapt(js({**CE, "datacontenttype": "application/json", "data": [generic, run()]})).runs
    assert [r["metadata"]["uid"] for r in two] == ["b1", "u1"]
    as_text = adapt(js({**CE, "data": orjson.dumps(generic).decode()})).runs
    assert as_text[0]["metadata"]["uid"] == "b1"
    encoded = base64.b64encode(js(generic)).decode()
    assert adapt(js({**CE, "data_base64": encoded})).runs[0]["metadata"]["uid"] == "b1"


def test_binary_cloudevents_over_http_and_kafka_headers() -> None:
    generic = js({"project": "ci", "uid": "b1", "state": "completed"})
    http = {
        "CE-SpecVersion": "1.0",
        "ce-id": "1",
        "ce-source": "ci",
        "ce-type": "t",
        "Content-Type": "application/json",
    }
    assert adapt(generic, http).adapter == "cloudevents"
    kafka = headers_of([("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"ci"), ("ce_type", b"t")])
    adapted = adapt(generic, kafka)
    assert (adapted.adapter, adapted.runs[0]["metadata"]["uid"]) == ("cloudevents", "b1")
    # The body of a binary event is its data, a list of runs included.
    listed = adapt(js([run(), run(uid="u2")]), {**kafka, "ce_time": "2026-01-01T00:00:00Z"})
    assert [r["status"]["last_update"] for r in listed.runs] == ["2026-01-01T00:00:00Z"] * 2


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (
            {"uid": "1"},
            {},
            "not a CloudEvent (no specversion attribute, no ce-specversion/ce_specversion header)",
        ),
        (
            "x",
            {"content-type": "application/cloudevents+json"},
            "a structured CloudEvent must be a JSON object, not a string",
        ),
        ({**CE, "specversion": "0.3", "data": {}}, {}, "specversion '0.3' is not '1.0'"),
        (
            {"specversion": "1.0", "data": {}},
            {},
            "the CloudEvent lacks its required attribute(s) id, source, type",
        ),
        (CE, {}, "the CloudEvent has no JSON data"),
        (
            {**CE, "datacontenttype": "text/plain", "data": "hi"},
            {},
            "datacontenttype 'text/plain' is not JSON",
        ),
        ({**CE, "data_base64": "%%%"}, {}, "data_base64 is not base64"),
        (
            {**CE, "data": "not json"},
            {},
            "data is no shape runherald knows (mlrun-webhook: the record is not JSON; "
            "mlrun-run: the record is not JSON; generic: the record is not JSON)",
        ),
        (
            {**CE, "data": {**CE, "data": run()}},
            {},
            "data is no shape runherald knows (mlrun-webhook: not an MLRun "
            "webhook body (needs message, severity and runs); mlrun-run: not a run dict (needs a metadata "
            "object and a status); generic: uid is missing or not a non-empty string)",
        ),
        (
            {**CE, "data": [run(), {"x": 1}]},
            {},
            "data[1] is no shape runherald knows (mlrun-webhook: not an MLRun "
            "webhook body (needs message, severity and runs); mlrun-run: not a run dict (needs a metadata "
            "object and a status); generic: uid is missing or not a non-empty string)",
        ),
        ({**CE, "data": []}, {}, "the data holds no run"),
        ({**CE, "specversion": 1.0, "data": {}}, {}, "specversion 1.0 is not '1.0'"),
        ({**CE, "id": 5, "data": {}}, {}, "the CloudEvent attribute(s) id must be strings"),
        ({**CE, "time": 5, "data": {}}, {}, "the CloudEvent attribute(s) time must be strings"),
        ({**CE, "datacontenttype": 5, "data": {}}, {}, "datacontenttype must be a string"),
        ({**CE, "data_base64": 5}, {}, "data_base64 must be a string"),
        (
            {"uid": "1", "state": "s"},
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-source": "s",
                "ce-type": "t",
                "content-type": "text/plain",
            },
            "binary-mode data of content type 'text/plain' is not JSON",
        ),
        (
            {"uid": "1", "state": "s"},
            {"ce_specversion": "2.0", "ce_id": "1", "ce_source": "s", "ce_type": "t"},
            "specversion '2.0' is not '1.0'",
        ),
        (
            {"uid": "1", "state": "s"},
            {"ce_specversion": "1.0", "ce_source": "s"},
            "the CloudEvent lacks its required attribute(s) id, type",
        ),
    ],
)
def test_cloudevents_refusals(body: Any, headers: dict[str, str], reason: str) -> None:
    assert refused(js(body), headers, project="d", adapter="cloudevents").reasons["cloudevents"] == reason


def test_a_record_that_says_it_is_a_cloudevent_is_refused_as_one_only() -> None:
    generic = js({"project": "ci", "uid": "b1", "state": "completed"})
    error = refused(generic, {"ce_specversion": "2.0", "ce_id": "1", "ce_source": "s", "ce_type": "t"})
    assert error.reasons == {"cloudevents": "specversion '2.0' is not '1.0'"}
    error = refused(generic, {"Content-Type": "application/cloudevents+json; charset=utf-8"})
    assert list(error.reasons) == ["cloudevents"]
    assert adapt(generic, {"Content-Type": "application/json"}).adapter == "generic"


def test_binary_cloudevent_data_that_is_not_json() -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"}
    error = refused(b"state=running", headers)
    assert error.reasons["cloudevents"] == "binary-mode data (the body) is not JSON"
    assert error.code == NOT_JSON


# -- adapt: lists, NDJSON, the forced adapter, errors ------------------------------------------------------


def test_json_arrays_and_ndjson_of_any_shapes() -> None:
    generic = {"project": "ci", "uid": "b1", "state": "running"}
    adapted = adapt(js([run(), generic]))
    assert [r["metadata"]["uid"] for r in adapted.runs] == ["u1", "b1"]
    assert adapted.adapter == "mlrun-run,generic"
    ndjson = b"\n".join([js(run()), js({**CE, "data": generic}), b"", js(webhook_body(run(uid="u3")))])
    adapted = adapt(ndjson)
    assert [r["metadata"]["uid"] for r in adapted.runs] == ["u1", "b1", "u3"]
    assert adapted.adapter == "mlrun-run,cloudevents,mlrun-webhook"


def test_one_bad_item_refuses_the_whole_record_saying_which() -> None:
    error = refused(js([run(), {"nope": 1}]))
    assert str(error).startswith("item 1: no adapter recognised the record (cloudevents: ")
    assert set(error.reasons) == set(ADAPTERS) - NAMED_ONLY
    assert error.code == NOT_A_RUN
    assert isinstance(error, InvalidEvent)


def test_each_adapter_reason_is_named() -> None:
    error = refused(b'{"a": 1}')
    for name, reason in error.reasons.items():
        assert f"{name}: {reason}" in str(error)


def test_empty_and_non_json_records() -> None:
    assert refused(b"  \n").reasons["generic"] == "the record is empty"
    assert refused(b"[]").reasons["generic"] == "the record is an empty list"
    bad = refused(b"{not json\n{neither")
    assert bad.code == NOT_JSON
    assert bad.reasons["mlrun-run"] == "the record is not JSON"


def test_a_named_adapter_is_the_only_one_tried() -> None:
    generic = js({"project": "ci", "uid": "b1", "state": "running"})
    assert adapt(generic, adapter="generic").adapter == "generic"
    error = refused(generic, adapter="mlrun-run")
    assert list(error.reasons) == ["mlrun-run"]
    with pytest.raises(ValueError, match="unknown adapter 'nope'"):
        adapt(generic, adapter="nope")


def test_header_names_are_case_insensitive_and_kafka_bytes_are_text() -> None:
    assert headers_of({"Content-Type": "a", "CE_ID": "b"}) == {"content-type": "a", "ce_id": "b"}
    assert headers_of([("X-Runherald-Hops", b"2"), ("k", None)]) == {"x-runherald-hops": "2", "k": ""}
    assert headers_of(None) == {}


# -- hops ------------------------------------------------------------------------------------------------


def test_hops_header() -> None:
    assert hops_from({}) is None
    assert hops_from({"x-runherald-HOPS": " 2 "}) == 2
    for bad in ("-1", "two", ""):
        with pytest.raises(InvalidEvent, match=f"{HOPS_HEADER} must be a non-negative integer"):
            hops_from({HOPS_HEADER: bad})


def test_stamped_hops_are_the_larger_of_the_header_and_the_run() -> None:
    plain, carried = run(), run(uid="u2", runherald={"hops": 2, "adapter": "mlrun-webhook"})
    assert stamp_hops([plain], None, 3) == [plain]
    stamped = stamp_hops([plain, carried], 1, 3)
    assert [hops_of(r) for r in stamped] == [1, 2]
    assert stamped[1]["runherald"]["adapter"] == "mlrun-webhook"
    assert "runherald" not in plain  # the input is not changed
    with pytest.raises(TooManyHops, match="loop detected: X-Runherald-Hops is 4, over max_hops 3") as caught:
        stamp_hops([plain], 4, 3)
    assert caught.value.code == "too_many_hops"
    with pytest.raises(TooManyHops):
        stamp_hops([run(runherald={"hops": 5})], 0, 3)


def test_next_hops_is_one_more_than_the_runs() -> None:
    assert next_hops([]) == 1
    assert next_hops([run()]) == 1
    assert next_hops([run(runherald={"hops": 2}), run()]) == 3
    assert hops_of(run(runherald={"hops": True})) == 0
    assert hops_of(run(runherald={"hops": "9"})) == 0


# -- the body mlrun 1.12.1 really sends (tests/fixtures/adapters/generate.py) ------------------------------

MLRUN_FIXTURE = Path(__file__).parents[1] / "fixtures" / "adapters" / "mlrun_webhook_body.json"


def test_the_body_mlrun_posts_is_an_mlrun_webhook_body() -> None:
    fixture = orjson.loads(MLRUN_FIXTURE.read_bytes())
    adapted = adapt(js(fixture["body"]), {"Content-Type": fixture["content_type"]})
    assert adapted.adapter == "mlrun-webhook"
    (only,) = adapted.runs
    assert only["metadata"]["project"] == "fraud-demo"
    assert only["metadata"]["uid"] == "8f2d6c1e4b7a4e0c9d3f5a1b2c3d4e5f"
    assert only["status"]["results"] == {"accuracy": 0.97}
    assert only["runherald"]["notified_by_source"] is True
    check_runs(adapted.runs)
    assert candidates(only, None) == []  # its webhook to runherald is not sent again
