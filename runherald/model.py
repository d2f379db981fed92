"""MLRun-compatible run and notification objects (the `mlrun.model` API of MLRun 1.12.1, without MLRun)."""

from __future__ import annotations

import builtins
import inspect
import json
import os
import re
from collections.abc import Iterator, Mapping
from copy import deepcopy
from datetime import datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import yaml

from runherald import channels
from runherald.errors import InvalidArgumentError, RunFailedError, RunheraldValueError
from runherald.run_states import RunStates, error_text
from runherald.secret_values import env_allowed, secret_env_name

if TYPE_CHECKING:
    from runherald.client import Client

# The placeholder a feature-store target path uses for the run id; MLRun stores paths with it verbatim.
RUN_ID_PLACE_HOLDER = "{run_id}"

# MLRun's default retry back-off (mlconf.function.spec.retry.backoff.default_base_delay).
DEFAULT_RETRY_BASE_DELAY = "30s"

_RUN_URI_PATTERN = re.compile(r"^(?P<project>.*)@(?P<uid>.*)\#(?P<iteration>.*?)(:(?P<tag>.*))?$")

_M = TypeVar("_M", bound="ModelObj")


# ---------------------------------------------------------------------------------------------- enums


class NotificationKind(StrEnum):
    """Channels a notification can be delivered through."""

    console = "console"
    git = "git"
    ipython = "ipython"
    slack = "slack"
    mail = "mail"
    webhook = "webhook"

    @classmethod
    def alert_notification_kinds(cls) -> list[str]:
        """Kinds MLRun allows on alerts."""
        return [cls.git, cls.slack, cls.webhook]

    @classmethod
    def local(cls) -> list[str]:
        """Kinds that only make sense in the submitting process."""
        return [cls.console, cls.ipython]


class NotificationSeverity(StrEnum):
    """Severity shown in a notification's text; never used for routing."""

    INFO = "info"
    DEBUG = "debug"
    VERBOSE = "verbose"
    WARNING = "warning"
    ERROR = "error"


class NotificationStatus(StrEnum):
    """Delivery status of one notification."""

    PENDING = "pending"
    SENT = "sent"
    ERROR = "error"


class NotificationLimits(Enum):
    """Size limits MLRun enforces on notifications."""

    max_params_size = 900 * 1024


class HyperParamStrategies:
    """Hyper-parameter search strategies."""

    grid = "grid"
    list = "list"
    random = "random"
    custom = "custom"

    @staticmethod
    def all() -> builtins.list[str]:
        """Every strategy."""
        return [
            HyperParamStrategies.grid,
            HyperParamStrategies.list,
            HyperParamStrategies.random,
            HyperParamStrategies.custom,
        ]


# ------------------------------------------------------------------------------------------ helpers


def _is_kept(value: Any) -> bool:
    """Whether `to_dict` keeps a value: None and empty dicts/lists are dropped, empty strings kept."""
    return value is not None and not (isinstance(value, dict | list) and not value)


def _init_field_names(cls: type) -> list[str]:
    return list(inspect.signature(cls).parameters)


def _verify_list(value: Any, name: str) -> None:
    if not isinstance(value, list):
        raise ValueError(f"Parameter {name} must be a list")


def _verify_dict(value: Any, name: str) -> None:
    if value is not None and not isinstance(value, dict) and not hasattr(value, "to_dict"):
        raise ValueError(f"Parameter {name} must be a dict or object")


def _as_model(value: Any, name: str, model: type[_M]) -> _M:
    _verify_dict(value, name)
    if value is None or isinstance(value, dict):
        return model.from_dict(value)
    return value


def _plain(value: Any) -> Any:
    """Replace enum members by their values, recursively, so YAML can represent them."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def dict_to_json(struct: Any) -> str:
    """Serialise like MLRun: unknown objects (datetimes, numpy values) become strings or lists."""
    return json.dumps(struct, default=_json_default)


def dict_to_yaml(struct: Any) -> str:
    """Serialise to block-style YAML in insertion order."""
    try:
        return yaml.safe_dump(_plain(struct), default_flow_style=False, sort_keys=False)
    except yaml.representer.RepresenterError as exc:
        raise ValueError("error: data result cannot be serialized to YAML") from exc


def template_artifact_path(artifact_path: str | None, project: str | None, run_uid: str | None = None) -> Any:
    """Fill `{{run.uid}}` and `{{project}}` / `{{run.project}}` in an artifact path."""
    if not artifact_path:
        return artifact_path
    artifact_path = artifact_path.replace("{{run.uid}}", run_uid or "project")
    if "{{run.project}}" in artifact_path or "{{project}}" in artifact_path:
        if not project:
            raise InvalidArgumentError(
                f"project name must be specified with this artifact_path template {artifact_path}"
            )
        artifact_path = artifact_path.replace("{{run.project}}", project).replace("{{project}}", project)
    return artifact_path


_STORE_PREFIXES = {
    "model": "models",
    "dataset": "datasets",
    "document": "documents",
    "llm-prompt": "llm-prompts",
}


def get_artifact_target(item: Mapping[str, Any], project: str | None = None) -> Any:
    """The URI an artifact dict is reachable at: a `store://` URI for stored kinds, else its target path."""
    spec, metadata = item.get("spec", {}), item.get("metadata", {})
    db_key, kind = spec.get("db_key"), item.get("kind")
    if kind in {"dataset", "model", "llm-prompt", "artifact"} and db_key:
        prefix = _STORE_PREFIXES.get(kind, "artifacts")
        target = f"store://{prefix}/{project or metadata.get('project')}/{db_key}"
        if metadata.get("iter"):
            target += f"#{metadata['iter']}"
        target += f":{metadata.get('tag') or 'latest'}"
        if metadata.get("tree"):
            target += f"@{metadata['tree']}"
        if metadata.get("uid"):
            target += f"^{metadata['uid']}"
        return target
    return spec.get("target_path")


def _return_key(log_hint: Any) -> str:
    """The artifact/result key of one `returns` entry (a log-hint string or dict)."""
    if isinstance(log_hint, Mapping):
        if "key" not in log_hint:
            raise InvalidArgumentError(f"A log hint dictionary must include the 'key' field: {log_hint}")
        key = str(log_hint["key"])
    elif isinstance(log_hint, str):
        key = log_hint
        if ":" in key:
            if key.count(":") > 1:
                raise InvalidArgumentError(
                    "Incorrect log hint pattern. Log hints can have only a single ':' in them to specify the "
                    "desired artifact type the returned value will be logged as: "
                    f"'<artifact_key> : <artifact_type>', but given: {log_hint}"
                )
            key, artifact_type = key.replace(" ", "").split(":")
            if not key or not artifact_type:
                raise InvalidArgumentError(
                    "Incorrect log hint pattern. The ':' in a log hint should specify the desired artifact "
                    "type the returned value will be logged as in the following pattern: "
                    f"'<artifact_key> : <artifact_type>', but no key or artifact type was given: {log_hint}"
                )
    else:
        raise InvalidArgumentError(f"A log hint must be a string or a dictionary, got {log_hint!r}")
    if "*" in key:
        level, key = key.replace("**", "*").split("*", 1)
        if not key.strip():
            raise InvalidArgumentError(
                f"Invalid log hint key '{log_hint}'. Key is missing after the unbundle operator '*'."
            )
        if level.strip() and not level.strip().lstrip("-").isdigit():
            raise InvalidArgumentError(f"Invalid unbundle level '{level}' in log hint '{log_hint}'.")
    return key.strip()


# ----------------------------------------------------------------------------------------- ModelObj


class ModelObj:
    """Base of every model object: attribute bag with MLRun's dict/JSON/YAML serialisation."""

    # Fields serialised by to_dict / read by from_dict; empty means "the __init__ parameters".
    _dict_fields: ClassVar[list[str]] = []
    # Fields left out by to_dict(strip=True): context-specific, not part of the object's definition.
    _default_fields_to_strip: ClassVar[list[str]] = []

    @classmethod
    def _field_names(cls) -> list[str]:
        return cls._dict_fields or _init_field_names(cls)

    def _field_value(self, name: str) -> Any:
        """The value `to_dict` stores for a field; subclasses override to serialise special fields."""
        return getattr(self, name, None)

    def to_dict(
        self, fields: list[str] | None = None, exclude: list[str] | None = None, strip: bool = False
    ) -> dict[str, Any]:
        """Convert to a plain dict, dropping None and empty dicts/lists (empty strings are kept)."""
        skipped = set(exclude or [])
        if strip:
            skipped |= set(self._default_fields_to_strip)
        struct: dict[str, Any] = {}
        for name in fields or self._field_names():
            if name in skipped:
                continue
            value = self._field_value(name)
            if hasattr(value, "to_dict"):
                value = value.to_dict(strip=strip)
            if _is_kept(value):
                struct[name] = value
        return struct

    @classmethod
    def from_dict(
        cls,
        struct: Mapping[str, Any] | None = None,
        fields: list[str] | None = None,
        deprecated_fields: dict[str, str] | None = None,
    ) -> Self:
        """Create an object from a dict without validating it (as MLRun does)."""
        new_obj = cls()
        struct = dict(struct or {})
        deprecated_fields = deprecated_fields or {}
        for name in fields or cls._field_names():
            if name in struct and name not in deprecated_fields:
                setattr(new_obj, name, struct[name])
        for old_name, new_name in deprecated_fields.items():
            value = struct.get(new_name) or struct.get(old_name)
            if value:
                setattr(new_obj, new_name, value)
        return new_obj

    def to_json(self, exclude: list[str] | None = None, strip: bool = False) -> str:
        """Convert to a JSON string."""
        return dict_to_json(self.to_dict(exclude=exclude, strip=strip))

    def to_yaml(self, exclude: list[str] | None = None, strip: bool = False) -> str:
        """Convert to a YAML string."""
        return dict_to_yaml(self.to_dict(exclude=exclude, strip=strip))

    def to_str(self) -> str:
        """The dict layout as a string."""
        return str(self)

    def __str__(self) -> str:
        return str(self.to_dict())

    def copy(self) -> Self:
        """A deep copy of the object."""
        return deepcopy(self)


# ------------------------------------------------------------------------------------- Notification


def _is_str_like(value: Any) -> bool:
    """What MLRun's (pydantic v1) schema accepts for a `str` field: strings, numbers and bytes."""
    return isinstance(value, str | int | float | Decimal | bytes | bytearray)


def _is_member(enum_cls: type[Enum], value: Any) -> bool:
    try:
        enum_cls(value)
    except (ValueError, TypeError):
        return False
    return True


def _is_dict_like(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    try:
        dict(value)
    except (TypeError, ValueError):
        return False
    return True


def _schema_errors(struct: Mapping[str, Any]) -> list[str]:
    """Fields of a notification dict that MLRun's pydantic schema would reject."""
    optional_str = ("message", "condition", "reason")
    errors = [name for name in optional_str if name in struct and not _is_str_like(struct[name])]
    if not _is_member(NotificationKind, struct.get("kind")):
        errors.append("kind")
    if "name" not in struct or not _is_str_like(struct["name"]):
        errors.append("name")
    for name, enum_cls in (("severity", NotificationSeverity), ("status", NotificationStatus)):
        if name in struct and not _is_member(enum_cls, struct[name]):
            errors.append(name)
    when = struct.get("when")
    if when is not None and (
        not isinstance(when, list | tuple | set | frozenset) or not all(_is_str_like(item) for item in when)
    ):
        errors.append("when")
    errors.extend(
        name for name in ("params", "secret_params") if name in struct and not _is_dict_like(struct[name])
    )
    sent_time = struct.get("sent_time")
    if sent_time is not None and not (_is_str_like(sent_time) or isinstance(sent_time, datetime)):
        errors.append("sent_time")
    return errors


def enrich_default_params(
    kind: str, params: Mapping[str, Any], default_params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A kind's params with server defaults underneath (and, for mail, MLRun's SMTP defaults)."""
    enriched = deepcopy(dict(default_params or {}))
    enriched.update(params)
    channel = channels.KINDS.get(kind)
    return channel.with_defaults(enriched) if channel is not None else enriched


class Notification(ModelObj):
    """One notification rule of a run: where to send, on which states, under which condition."""

    def __init__(
        self,
        kind: str = NotificationKind.slack,
        name: str | None = None,
        message: str | None = None,
        severity: str | None = NotificationSeverity.INFO,
        when: list[str] | None = None,
        condition: str | None = None,
        secret_params: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        status: str | None = None,
        sent_time: str | datetime | None = None,
        reason: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name or ""
        self.message = message or ""
        self.severity = severity
        self.when = when or ["completed"]
        self.condition = condition or ""
        self.secret_params = secret_params or {}
        self.params = params or {}
        self.status = status
        self.sent_time = sent_time
        self.reason = reason
        self.validate_notification()

    def validate_notification(self) -> None:
        """Check field types and enum values, and the secret-params size limit."""
        if _schema_errors(self.to_dict()):
            raise InvalidArgumentError("Invalid notification object")
        # The limit keeps the params inside one k8s secret (1 MB minus room for metadata).
        if len(json.dumps(self.secret_params)) > NotificationLimits.max_params_size.value:
            raise InvalidArgumentError("Notification params size exceeds max size of 1 MB")

    def validate_notification_params(
        self, default_notification_params: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        """Check the params a notification's kind requires (server-side validation in MLRun)."""
        kind = NotificationKind(self.kind)
        secret_params = self.secret_params or {}
        defaults = (default_notification_params or {}).get(kind, {})
        params = enrich_default_params(kind, self.params or {}, defaults)
        if secret_params.get("secret", ""):
            # Already concealed into a project secret: nothing left to check.
            if len(secret_params) > 1:
                raise InvalidArgumentError(
                    "When the 'secret' key is present, 'secret_params' should not contain any other keys."
                )
            return
        if not secret_params and not params:
            raise InvalidArgumentError(
                "Both 'secret_params' and 'params' are empty, at least one must be defined."
            )
        channels.kind(kind).check_params(secret_params | params)

    def enrich_unmasked_secret_params_from_project_secret(
        self, secrets: Mapping[str, str] | None = None
    ) -> None:
        """Replace `{"secret": KEY}` by the JSON dict stored under KEY (in `secrets`, else in the env).

        Unlike MLRun, the environment is read only where secrets belong: ``RUNHERALD_SECRET_<KEY>``
        (see secret_values.secret_env_name), or KEY itself when it starts with ``RUNHERALD_SECRET_``.
        """
        key = self.secret_params.get("secret")
        if not key:
            return
        env_value = os.environ.get(secret_env_name(key))
        if env_value is None and env_allowed(key):
            env_value = os.environ.get(key)
        value = (secrets or {}).get(key) or env_value
        if value:
            try:
                self.secret_params = json.loads(value)
            except ValueError as exc:
                raise RunheraldValueError("Failed to parse secret value") from exc

    @staticmethod
    def validate_notification_uniqueness(notifications: list[Notification] | NotificationList) -> None:
        """Reject a set of notifications in which two share a name."""
        names = [notification.name for notification in notifications]
        if len(names) != len(set(names)):
            raise InvalidArgumentError("Notification names must be unique")


class NotificationList:
    """The notifications of a run spec, in order; MLRun's `ObjectList` interface (index by position or name).

    Unlike MLRun's `ObjectList`, two notifications with the same name are both kept, so that
    `Notification.validate_notification_uniqueness` can still see the duplicate.
    """

    def __init__(self, notifications: list[Notification | dict[str, Any]] | None = None) -> None:
        self._items: list[Notification] = [self._as_notification(item) for item in notifications or []]

    @staticmethod
    def _as_notification(item: Notification | Mapping[str, Any]) -> Notification:
        if isinstance(item, Notification):
            return item
        if isinstance(item, Mapping):
            if "name" not in item:
                raise ValueError("illegal object no 'name' field")
            return Notification.from_dict(item)
        raise ValueError(f"illegal child (should be dict or child kind), {item}")

    def __iter__(self) -> Iterator[Notification]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, key: int | str) -> Notification:
        if isinstance(key, int):
            return self._items[key]
        for item in self._items:
            if item.name == key:
                return item
        raise KeyError(key)

    def __setitem__(self, key: str, item: Notification | dict[str, Any]) -> None:
        self.update(item, key)

    def __delitem__(self, key: int | str) -> None:
        self._items.remove(self[key])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NotificationList):
            return self.to_dict() == other.to_dict()
        if isinstance(other, list):
            return self._items == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def keys(self) -> list[str]:
        """Notification names, in order."""
        return [item.name for item in self._items]

    def values(self) -> list[Notification]:
        """Notifications, in order."""
        return list(self._items)

    def items(self) -> list[tuple[str, Notification]]:
        """(name, notification) pairs, in order."""
        return [(item.name, item) for item in self._items]

    def update(self, item: Notification | dict[str, Any], name: str | None = None) -> Notification:
        """Replace the notification of the same name, or append it."""
        notification = self._as_notification(item)
        notification.name = name or notification.name
        for index, existing in enumerate(self._items):
            if existing.name == notification.name:
                self._items[index] = notification
                return notification
        self._items.append(notification)
        return notification

    def to_dict(self, strip: bool = False) -> list[dict[str, Any]]:
        """The notifications as a list of dicts."""
        return [item.to_dict(strip=strip) for item in self._items]


# ------------------------------------------------------------------------------------------ the run


class RunMetadata(ModelObj):
    """Identity of a run: uid, name, project, labels, iteration."""

    def __init__(
        self,
        uid: str | None = None,
        name: str | None = None,
        project: str | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        iteration: int | None = None,
    ) -> None:
        self.uid = uid
        self._iteration = iteration
        self.name = name
        self.project = project
        self.labels = labels or {}
        self.annotations = annotations or {}

    @property
    def iteration(self) -> int:
        """Hyper-parameter iteration; 0 for the parent run."""
        return self._iteration or 0

    @iteration.setter
    def iteration(self, iteration: int | None) -> None:
        self._iteration = iteration

    def is_workflow_runner(self) -> bool:
        """Whether this run is the runner of a workflow."""
        return bool(self.labels) and self.labels.get("job-type", "") == "workflow-runner"


class HyperParamOptions(ModelObj):
    """How a hyper-parameter run is searched and judged."""

    def __init__(
        self,
        param_file: str | None = None,
        strategy: str | None = None,
        selector: str | None = None,
        stop_condition: str | None = None,
        parallel_runs: int | None = None,
        dask_cluster_uri: str | None = None,
        max_iterations: int | None = None,
        max_errors: int | None = None,
        teardown_dask: bool | None = None,
    ) -> None:
        self.param_file = param_file
        self.strategy = strategy
        self.selector = selector
        self.stop_condition = stop_condition
        self.max_iterations = max_iterations
        self.max_errors = max_errors
        self.parallel_runs = parallel_runs
        self.dask_cluster_uri = dask_cluster_uri
        self.teardown_dask = teardown_dask

    def validate(self) -> None:
        """Reject an unknown strategy, and max_iterations outside the random strategy."""
        if self.strategy and self.strategy not in HyperParamStrategies.all():
            raise InvalidArgumentError(
                f"illegal hyper param strategy, use {','.join(HyperParamStrategies.all())}"
            )
        if self.max_iterations and self.strategy != HyperParamStrategies.random:
            raise InvalidArgumentError("max_iterations is only valid in random strategy")


class RetryBackoff(ModelObj):
    """Delay between retries of a run."""

    def __init__(self, base_delay: str | None = None) -> None:
        self.base_delay = base_delay or DEFAULT_RETRY_BASE_DELAY


class Retry(ModelObj):
    """How often a failed run is retried."""

    def __init__(self, count: int = 0, backoff: RetryBackoff | dict[str, Any] | None = None) -> None:
        self.count: int | None = count or None
        self.backoff = backoff

    @property
    def backoff(self) -> RetryBackoff | None:
        """The back-off, or None when retries are off."""
        return self._backoff if self.count else None

    @backoff.setter
    def backoff(self, backoff: RetryBackoff | dict[str, Any] | None) -> None:
        self._backoff = _as_model(backoff, "backoff", RetryBackoff)


class RunSpec(ModelObj):
    """What a run does: parameters, inputs, outputs, notifications and run options."""

    def __init__(
        self,
        parameters: dict[str, Any] | None = None,
        hyperparams: dict[str, list[Any]] | None = None,
        param_file: str | None = None,
        selector: str | None = None,
        handler: Any = None,
        inputs: dict[str, Any] | None = None,
        outputs: list[str] | None = None,
        input_path: str | None = None,
        output_path: str | None = None,
        function: str | None = None,
        secret_sources: list[dict[str, Any]] | None = None,
        data_stores: list[Any] | None = None,
        strategy: str | None = None,
        verbose: bool | None = None,
        scrape_metrics: bool | None = None,
        hyper_param_options: HyperParamOptions | dict[str, Any] | None = None,
        allow_empty_resources: bool | None = None,
        inputs_type_hints: dict[str, str] | None = None,
        returns: list[str | dict[str, Any]] | None = None,
        notifications: list[Notification | dict[str, Any]] | NotificationList | None = None,
        state_thresholds: dict[str, str] | None = None,
        reset_on_run: bool | None = None,
        node_selector: dict[str, str] | None = None,
        tolerations: Any = None,
        affinity: Any = None,
        retry: Retry | dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> None:
        self._inputs_type_hints: dict[str, str] = {}
        self._inputs: dict[str, Any] | None = None
        self.inputs = inputs
        if inputs_type_hints:
            self._inputs_type_hints = inputs_type_hints
        self._returns: list[Any] | None = None
        self.returns = returns
        self._outputs = outputs
        self.hyper_param_options = hyper_param_options
        self.parameters = parameters or {}
        self.hyperparams = hyperparams or {}
        self.param_file = param_file
        self.strategy = strategy
        self.selector = selector
        self.handler = handler
        self.input_path = input_path
        self.output_path = output_path
        self.function = function
        self._secret_sources: list[dict[str, Any]] = secret_sources or []
        self._data_stores = data_stores
        self.verbose = verbose
        self.scrape_metrics = scrape_metrics
        self.allow_empty_resources = allow_empty_resources
        self.notifications = notifications or []
        self.state_thresholds = state_thresholds or {}
        self.reset_on_run = reset_on_run
        self.node_selector = node_selector or {}
        self.tolerations = tolerations or {}
        self.affinity = affinity or {}
        self.retry = retry or {}
        self.auth = auth or {}

    def _field_value(self, name: str) -> Any:
        value = super()._field_value(name)
        if name == "handler":
            return value if isinstance(value, str) and value else None
        if name in ("affinity", "tolerations") and hasattr(value, "to_dict"):
            return value.to_dict()
        return value

    def is_hyper_job(self) -> Any:
        """The param file or hyper-params that make this a hyper-parameter run (falsy if none)."""
        return self.param_file or self.hyper_param_options.param_file or self.hyperparams

    @property
    def inputs(self) -> dict[str, Any] | None:
        """Input name → data path (a path may also be a list or dict of paths)."""
        return self._inputs

    @inputs.setter
    def inputs(self, inputs: dict[str, Any] | None) -> None:
        _verify_dict(inputs, "inputs")
        self._inputs = inputs

    @property
    def inputs_type_hints(self) -> dict[str, str]:
        """Input name → type hint to parse the input as."""
        return self._inputs_type_hints

    @inputs_type_hints.setter
    def inputs_type_hints(self, inputs_type_hints: dict[str, str]) -> None:
        _verify_dict(inputs_type_hints, "inputs_type_hints")
        self._inputs_type_hints = inputs_type_hints

    @property
    def returns(self) -> list[Any] | None:
        """Log hints for the handler's returned values ("key", "key : type", or dicts)."""
        return self._returns

    @returns.setter
    def returns(self, returns: list[Any] | None) -> None:
        if returns is None:
            self._returns = None
            return
        _verify_list(returns, "returns")
        for log_hint in returns:
            _return_key(log_hint)
        self._returns = returns

    @property
    def hyper_param_options(self) -> HyperParamOptions:
        """Hyper-parameter search options."""
        return self._hyper_param_options

    @hyper_param_options.setter
    def hyper_param_options(self, hyper_param_options: HyperParamOptions | dict[str, Any] | None) -> None:
        self._hyper_param_options = _as_model(hyper_param_options, "hyper_param_options", HyperParamOptions)

    @property
    def outputs(self) -> list[str]:
        """Expected output keys: the `outputs` set by the user joined with the keys of `returns`."""
        return self.join_outputs_and_returns(outputs=self._outputs, returns=self.returns)

    @outputs.setter
    def outputs(self, outputs: list[str]) -> None:
        _verify_list(outputs, "outputs")
        self._outputs = outputs

    @property
    def secret_sources(self) -> list[dict[str, Any]]:
        """Secret sources (`{"kind", "source"}`) to inject into the run."""
        return self._secret_sources

    @secret_sources.setter
    def secret_sources(self, secret_sources: list[dict[str, Any]]) -> None:
        _verify_list(secret_sources, "secret_sources")
        self._secret_sources = secret_sources

    @property
    def data_stores(self) -> list[Any] | None:
        """Data store profiles of the run."""
        return self._data_stores

    @data_stores.setter
    def data_stores(self, data_stores: list[Any]) -> None:
        _verify_list(data_stores, "data_stores")
        self._data_stores = data_stores

    @property
    def handler_name(self) -> str:
        """The handler's name, whether it was given as a string or a function."""
        if not self.handler:
            return ""
        if inspect.isfunction(self.handler):
            return self.handler.__name__
        return str(self.handler)

    @property
    def notifications(self) -> NotificationList:
        """The run's notification rules, as Notification objects."""
        return self._notifications

    @notifications.setter
    def notifications(self, notifications: list[Notification | dict[str, Any]] | NotificationList) -> None:
        if isinstance(notifications, NotificationList):
            self._notifications = notifications
        elif isinstance(notifications, list):
            self._notifications = NotificationList(notifications)
        else:
            raise ValueError("Notifications must be a list")

    @property
    def state_thresholds(self) -> dict[str, str]:
        """Resource state → time string after which the run is aborted."""
        return self._state_thresholds

    @state_thresholds.setter
    def state_thresholds(self, state_thresholds: dict[str, str]) -> None:
        _verify_dict(state_thresholds, "state_thresholds")
        self._state_thresholds = state_thresholds

    @property
    def retry(self) -> Retry:
        """Retry configuration."""
        return self._retry

    @retry.setter
    def retry(self, retry: Retry | dict[str, Any] | None) -> None:
        self._retry = _as_model(retry, "retry", Retry)

    def extract_type_hints_from_inputs(self) -> None:
        """Move "key : type" hints out of the input keys into `inputs_type_hints`."""
        if self.inputs is None:
            return
        cleared_inputs: dict[str, Any] = {}
        type_hints: dict[str, str] = {}
        for input_key, input_value in self.inputs.items():
            key = input_key
            if ":" in input_key:
                key, type_hint = self._separate_type_hint_from_input_key(input_key)
                type_hints[key] = type_hint
            cleared_inputs[key] = input_value
        self.inputs = cleared_inputs
        self.inputs_type_hints = type_hints

    @staticmethod
    def join_outputs_and_returns(outputs: list[str] | None, returns: list[Any] | None) -> list[str]:
        """The output keys named by `outputs` and by the log hints in `returns`, without duplicates."""
        keys = [*(outputs or []), *(_return_key(log_hint) for log_hint in returns or [])]
        return list(dict.fromkeys(keys))

    @staticmethod
    def _separate_type_hint_from_input_key(input_key: str) -> tuple[str, str]:
        if input_key.count(":") > 1:
            raise InvalidArgumentError(
                "Incorrect input pattern. Input keys can have only a single ':' in them to specify the "
                f"desired type the input will be parsed as. Given: {input_key}."
            )
        key, type_hint = input_key.replace(" ", "").split(":")
        return key, type_hint


class RunStatus(ModelObj):
    """Where a run stands: state, results, error, and each notification's delivery status."""

    _default_fields_to_strip: ClassVar[list[str]] = ["artifacts"]

    def __init__(
        self,
        state: str | None = None,
        error: str | None = None,
        host: str | None = None,
        commit: str | None = None,
        status_text: str | None = None,
        results: dict[str, Any] | None = None,
        artifacts: list[dict[str, Any]] | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        last_update: str | None = None,
        iterations: list[Any] | None = None,
        ui_url: str | None = None,
        reason: str | None = None,
        notifications: dict[str, dict[str, Any]] | None = None,
        artifact_uris: dict[str, str] | None = None,
        retry_count: int | None = None,
        retries: list[dict[str, Any]] | None = None,
    ) -> None:
        self.state = state or "created"
        self.status_text = status_text
        self.error = error
        self.host = host
        self.commit = commit
        self.results = results
        self.artifacts = artifacts
        self.start_time = start_time
        self.end_time = end_time
        self.last_update = last_update
        self.iterations = iterations
        self.ui_url = ui_url
        self.reason = reason
        self.notifications = notifications or {}
        self.artifact_uris = artifact_uris or {}
        self.retry_count = retry_count or None
        self.retries = retries or []

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        """Artifact dicts carried on the run (never fetched from a database here)."""
        return self._artifacts

    @artifacts.setter
    def artifacts(self, artifacts: list[dict[str, Any]] | None) -> None:
        self._artifacts = artifacts or []

    @property
    def artifact_uris(self) -> dict[str, str]:
        """Artifact key → store URI."""
        return self._artifact_uris

    @artifact_uris.setter
    def artifact_uris(self, artifact_uris: dict[str, str] | list[dict[str, Any]]) -> None:
        if isinstance(artifact_uris, list):
            # The deprecated form: a list of artifact dicts.
            artifact_uris = {
                artifact["metadata"]["key"]: get_artifact_target(artifact) for artifact in artifact_uris
            }
        self._artifact_uris = artifact_uris

    def is_failed(self) -> bool | None:
        """Whether the run failed; None while the state is unknown."""
        if not self.state:
            return None
        return self.state.casefold() in ("failed", "error")


class RunTemplate(ModelObj):
    """A run to be: spec and metadata, with builder methods."""

    def __init__(
        self,
        spec: RunSpec | dict[str, Any] | None = None,
        metadata: RunMetadata | dict[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.metadata = metadata

    @property
    def spec(self) -> RunSpec:
        """The run's specification."""
        return self._spec

    @spec.setter
    def spec(self, spec: RunSpec | dict[str, Any] | None) -> None:
        self._spec = _as_model(spec, "spec", RunSpec)

    @property
    def metadata(self) -> RunMetadata:
        """The run's identity."""
        return self._metadata

    @metadata.setter
    def metadata(self, metadata: RunMetadata | dict[str, Any] | None) -> None:
        self._metadata = _as_model(metadata, "metadata", RunMetadata)

    def with_params(self, **kwargs: Any) -> Self:
        """Set the task parameters (replacing any set before)."""
        self.spec.parameters = kwargs
        return self

    def with_input(self, key: str, path: Any) -> Self:
        """Add one data input."""
        if not self.spec.inputs:
            self.spec.inputs = {}
        assert self.spec.inputs is not None
        self.spec.inputs[key] = path
        return self

    def with_hyper_params(
        self,
        hyperparams: dict[str, list[Any]],
        selector: str | None = None,
        strategy: str | None = None,
        **options: Any,
    ) -> Self:
        """Set hyper-parameter values and search options (see HyperParamOptions)."""
        self.spec.hyperparams = hyperparams
        self._set_hyper_param_options(options, selector, strategy)
        return self

    def with_param_file(
        self,
        param_file: str,
        selector: str | None = None,
        strategy: str | None = None,
        **options: Any,
    ) -> Self:
        """Take hyper-parameter values from a file and set the search options."""
        self._set_hyper_param_options({**options, "param_file": param_file}, selector, strategy)
        return self

    def _set_hyper_param_options(
        self, options: dict[str, Any], selector: str | None, strategy: str | None
    ) -> None:
        self.spec.hyper_param_options = options
        self.spec.hyper_param_options.selector = selector
        self.spec.hyper_param_options.strategy = strategy
        self.spec.hyper_param_options.validate()

    def with_secrets(self, kind: str, source: Any) -> Self:
        """Register a secrets source (file, inline, env, vault, kubernetes, azure_vault)."""
        if kind == "vault" and isinstance(source, list):
            source = {"project": self.metadata.project, "secrets": source}
        self.spec.secret_sources.append({"kind": kind, "source": source})
        return self

    def set_label(self, key: str, value: Any) -> Self:
        """Set one metadata label (the value is stored as a string)."""
        self.metadata.labels[key] = str(value)
        return self

    def to_env(self) -> None:
        """Export the task as JSON in the `MLRUN_EXEC_CONFIG` environment variable."""
        os.environ["MLRUN_EXEC_CONFIG"] = self.to_json()


class RunObject(RunTemplate):
    """A run: spec, metadata and status; reads only what it carries (no database calls)."""

    def __init__(
        self,
        spec: RunSpec | dict[str, Any] | None = None,
        metadata: RunMetadata | dict[str, Any] | None = None,
        status: RunStatus | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, metadata)
        self.status = status
        self.outputs_wait_for_completion = True

    @classmethod
    def from_template(cls, template: RunTemplate) -> Self:
        """A run built from a template's spec and metadata."""
        return cls(template.spec, template.metadata)

    def to_json(
        self,
        exclude: list[str] | None = None,
        strip: bool = False,
        exclude_notifications_params: bool = False,
    ) -> str:
        """Convert to JSON; `exclude_notifications_params` leaves out every notification's `params`."""
        struct = self.to_dict(exclude=exclude, strip=strip)
        if exclude_notifications_params:
            for notification in struct.get("spec", {}).get("notifications", []):
                notification.pop("params", None)
        return dict_to_json(struct)

    @property
    def status(self) -> RunStatus:
        """The run's status."""
        return self._status

    @status.setter
    def status(self, status: RunStatus | dict[str, Any] | None) -> None:
        self._status = _as_model(status, "status", RunStatus)

    @property
    def error(self) -> str:
        """The error text of a failed or aborted run, else an empty string."""
        status = self.status
        if not status:
            return ""
        fields = ("state", "error", "status_text", "reason")
        return error_text({field: getattr(status, field) for field in fields})

    def uid(self) -> str | None:
        """The run's unique id."""
        return self.metadata.uid

    def state(self) -> str:
        """The run's state as carried in the object (MLRun would refresh a non-terminal one from its DB)."""
        return self.status.state or "unknown"

    def refresh(self, client: Client | None = None) -> Self:
        """Read the run's latest status from runherald's API (``GET /api/v1/runs/{project}/{uid}``), as
        MLRun's reads its DB; artifacts the answer lacks are kept. `client` defaults to
        `runherald.Client()` (RUNHERALD_API, RUNHERALD_TOKEN). ApiNotFound: runherald has not seen it."""
        from runherald.client import Client

        self._take_status((client or Client()).run(self.metadata.project or "", self.metadata.uid or ""))
        return self

    def wait_for_completion(
        self,
        sleep: float = 3,
        timeout: float = 0,
        raise_on_failure: bool = True,
        show_logs: bool | None = None,
        logs_interval: float | None = None,
        *,
        client: Client | None = None,
    ) -> str:
        """Wait for the run to reach a terminal state and return it, as MLRun's does; `status` follows.

        Polls runherald's API (runherald.client.Client.wait): after 0.1 s, then twice as long each time,
        up to `sleep` seconds apart. `timeout` seconds (0: no limit) raises RunTimeoutError
        (MLRunTimeoutError); with `raise_on_failure`, a run that ended other than `completed` raises
        RunFailedError (MLRunRuntimeError) with its error text. `show_logs` and `logs_interval` are
        accepted for MLRun callers: runherald has no logs to show. `client` as for `refresh`.
        """
        from runherald.client import Client

        try:
            found = (client or Client()).wait(
                self.metadata.project or "",
                self.metadata.uid or "",
                sleep=sleep,
                timeout=timeout,
                raise_on_failure=raise_on_failure,
            )
        except RunFailedError as exc:
            self._take_status(exc.run)
            raise
        self._take_status(found)
        return self.state()

    def _take_status(self, run: Mapping[str, Any]) -> None:
        status = dict(run.get("status") or {})
        if not status.get("artifacts"):  # as MLRun's refresh: artifacts are the object's own
            status["artifacts"] = self.status.artifacts
        self.status = RunStatus.from_dict(status)

    @property
    def ui_url(self) -> str | None:
        """The run's UI URL, if the status carries one."""
        return self.status.ui_url

    @property
    def outputs(self) -> dict[str, Any]:
        """Results and artifact URIs by key."""
        outputs: dict[str, Any] = dict(self.status.results or {})
        if self.status.artifacts:
            outputs.update(self._artifact_targets_by_key())
        elif self.status.artifact_uris:
            outputs.update(self.status.artifact_uris)
        return outputs

    def output(self, key: str) -> Any:
        """One result value or artifact URI by key, or None."""
        if self.status.results and key in self.status.results:
            return self.status.results[key]
        artifact = self._artifact(key)
        if artifact:
            return get_artifact_target(artifact, self.metadata.project)
        return self.status.artifact_uris.get(key)

    def _artifact(self, key: str) -> dict[str, Any] | None:
        matching = [artifact for artifact in self.status.artifacts if artifact["metadata"].get("key") == key]
        return self._preferred_artifact(matching) if matching else None

    @staticmethod
    def _preferred_artifact(artifacts: list[dict[str, Any]]) -> dict[str, Any]:
        """The newest artifact, preferring any tag over `latest` (which duplicates another tag)."""
        ordered = sorted(artifacts, key=lambda artifact: str(artifact["metadata"].get("created") or ""))
        tagged = [artifact for artifact in ordered if artifact["metadata"].get("tag") != "latest"]
        return (tagged or ordered)[-1]

    def _artifact_targets_by_key(self) -> dict[str, Any]:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for artifact in self.status.artifacts:
            by_key.setdefault(artifact["metadata"]["key"], []).append(artifact)
        return {
            key: get_artifact_target(self._preferred_artifact(artifacts), self.metadata.project)
            for key, artifacts in by_key.items()
        }

    @staticmethod
    def create_uri(project: str, uid: str, iteration: int | str, tag: str = "") -> str:
        """The run URI `<project>@<uid>#<iteration>[:tag]`."""
        return f"{project}@{uid}#{iteration}" + (f":{tag}" if tag else "")

    @staticmethod
    def parse_uri(uri: str) -> tuple[str, str, str, str | None]:
        """Split a run URI into project, uid, iteration and tag."""
        match = _RUN_URI_PATTERN.match(uri)
        if not match:
            raise ValueError("Uri not in supported format <project>@<uid>#<iteration>[:tag]")
        return match["project"], match["uid"], match["iteration"], match["tag"]


def new_task(
    name: str | None = None,
    project: str | None = None,
    handler: Any = None,
    params: dict[str, Any] | None = None,
    hyper_params: dict[str, list[Any]] | None = None,
    param_file: str | None = None,
    selector: str | None = None,
    hyper_param_options: HyperParamOptions | dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    outputs: list[str] | None = None,
    in_path: str | None = None,
    out_path: str | None = None,
    artifact_path: str | None = None,
    secrets: list[dict[str, Any]] | None = None,
    base: RunTemplate | None = None,
    returns: list[Any] | None = None,
    retry: Retry | dict[str, Any] | None = None,
) -> RunTemplate:
    """Create a task (a RunTemplate), optionally starting from a copy of `base`."""
    run = deepcopy(base) if base else RunTemplate()
    spec = run.spec
    run.metadata.name = name or run.metadata.name
    run.metadata.project = project or run.metadata.project
    spec.handler = handler or spec.handler
    spec.parameters = params or spec.parameters
    spec.inputs = inputs or spec.inputs
    spec.returns = returns or spec.returns
    spec.outputs = outputs or spec.outputs or []
    spec.input_path = in_path or spec.input_path
    spec.output_path = artifact_path or out_path or spec.output_path
    spec.secret_sources = secrets or spec.secret_sources or []
    spec.hyperparams = hyper_params or spec.hyperparams
    spec.hyper_param_options = hyper_param_options or spec.hyper_param_options
    spec.hyper_param_options.param_file = param_file or spec.hyper_param_options.param_file
    spec.hyper_param_options.selector = selector or spec.hyper_param_options.selector
    spec.retry = retry or spec.retry
    return run


# -------------------------------------------------------------------------------- feature-store specs


class TargetPathObject:
    """A target path template that holds the `{run_id}` placeholder where the run id belongs."""

    def __init__(self, base_path: str | None = None, run_id: str | None = None, is_single_file: bool = False):
        self.run_id = run_id
        path = base_path or ""
        if run_id is None:
            if RUN_ID_PLACE_HOLDER in path:
                raise InvalidArgumentError(
                    "Error when trying to create TargetPathObject with place holder '{run_id}' but no value."
                )
            self.full_path_template = base_path
            return
        if RUN_ID_PLACE_HOLDER in path:
            if path.endswith(RUN_ID_PLACE_HOLDER):
                path += "/"
        elif not is_single_file:
            path = path if path.endswith("/") else path + "/"
            path += RUN_ID_PLACE_HOLDER + "/"
        else:
            # A single file goes under the run-id directory: dir/{run_id}/file.
            directory_end = len(path) if path.endswith("/") else path.rfind("/") + 1
            path = path[:directory_end] + RUN_ID_PLACE_HOLDER + "/" + path[directory_end:]
        self.full_path_template = path

    def get_templated_path(self) -> str | None:
        """The path with the `{run_id}` placeholder still in it."""
        return self.full_path_template

    def get_absolute_path(self, project_name: str | None = None) -> Any:
        """The path with project templates filled and the run id substituted."""
        path = template_artifact_path(self.full_path_template, project_name)
        return path.format(run_id=self.run_id) if self.run_id else path


class DataSource(ModelObj):
    """An online or offline feature-store data source."""

    _dict_fields: ClassVar[list[str]] = [
        "kind",
        "name",
        "path",
        "attributes",
        "key_field",
        "time_field",
        "schedule",
        "online",
        "workers",
        "max_age",
        "start_time",
        "end_time",
    ]
    kind: str | None = None

    def __init__(
        self,
        name: str | None = None,
        path: str | None = None,
        attributes: dict[str, object] | None = None,
        key_field: str | None = None,
        time_field: str | None = None,
        schedule: str | None = None,
        start_time: datetime | str | None = None,
        end_time: datetime | str | None = None,
    ) -> None:
        self.name = name
        self.path = str(path) if path is not None else None
        self.attributes = attributes or {}
        self.schedule = schedule
        self.key_field = key_field
        self.time_field = time_field
        self.start_time = start_time
        self.end_time = end_time
        self.online: bool | None = None
        self.max_age: Any = None
        self.workers: int | None = None
        self._secrets: dict[str, Any] = {}

    def set_secrets(self, secrets: dict[str, Any]) -> None:
        """Secrets the source needs to be read."""
        self._secrets = secrets

    def _field_value(self, name: str) -> Any:
        value = super()._field_value(name)
        if name in ("start_time", "end_time") and isinstance(value, datetime):
            return value.isoformat()
        return value


class DataTargetBase(ModelObj):
    """A feature-store destination for feature-set data."""

    _dict_fields: ClassVar[list[str]] = [
        "name",
        "kind",
        "path",
        "after_step",
        "attributes",
        "partitioned",
        "key_bucketing_number",
        "partition_cols",
        "time_partitioning_granularity",
        "max_events",
        "flush_after_seconds",
        "storage_options",
        "run_id",
        "schema",
    ]

    def __init__(
        self,
        kind: str | None = None,
        name: str = "",
        path: str | None = None,
        attributes: dict[str, str] | None = None,
        after_step: str | None = None,
        partitioned: bool = False,
        key_bucketing_number: int | None = None,
        partition_cols: list[str] | None = None,
        time_partitioning_granularity: str | None = None,
        max_events: int | None = None,
        flush_after_seconds: int | None = None,
        storage_options: dict[str, str] | None = None,
        schema: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.path = path
        self.after_step = after_step
        self.attributes = attributes or {}
        self.last_written: Any = None
        self.partitioned = partitioned
        self.key_bucketing_number = key_bucketing_number
        self.partition_cols = partition_cols
        self.time_partitioning_granularity = time_partitioning_granularity
        self.max_events = max_events
        self.flush_after_seconds = flush_after_seconds
        self.storage_options = storage_options
        self.run_id: str | None = None
        self.schema = schema

    @classmethod
    def from_dict(
        cls,
        struct: Mapping[str, Any] | None = None,
        fields: list[str] | None = None,
        deprecated_fields: dict[str, str] | None = None,
    ) -> Self:
        """Create a target from a dict; `deprecated_fields` is accepted and ignored, as in MLRun."""
        return super().from_dict(struct, fields=fields)

    def get_path(self) -> TargetPathObject | None:
        """The target's path object (streams never get a run-id directory)."""
        if self.kind in ("stream", "kafka"):
            return TargetPathObject(self.path or "")
        if not self.path:
            return None
        is_single_file = getattr(self, "is_single_file", None)
        return TargetPathObject(self.path, self.run_id, bool(is_single_file and is_single_file()))


class FeatureSetProducer(ModelObj):
    """The job that produced a feature set's data."""

    def __init__(
        self,
        kind: str | None = None,
        name: str | None = None,
        uri: str | None = None,
        owner: str | None = None,
        sources: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.owner = owner
        self.uri = uri
        self.sources = sources or {}


class DataTarget(DataTargetBase):
    """A data target with its status (as kept in a feature set's or vector's status)."""

    _dict_fields: ClassVar[list[str]] = [
        "name",
        "kind",
        "path",
        "attributes",
        "start_time",
        "online",
        "status",
        "updated",
        "size",
        "last_written",
        "run_id",
        "partitioned",
        "key_bucketing_number",
        "partition_cols",
        "time_partitioning_granularity",
    ]

    def __init__(
        self, kind: str | None = None, name: str = "", path: str | None = None, online: bool | None = None
    ) -> None:
        super().__init__(kind, name, path)
        self.status = ""
        self.updated: Any = None
        self.size: int | None = None
        self.online = online
        self.max_age: Any = None
        self.start_time: Any = None
        self.last_written = None
        self.producer = {}
        self.attributes = {}

    @property
    def producer(self) -> FeatureSetProducer:
        """The job that produced the data."""
        return self._producer

    @producer.setter
    def producer(self, producer: FeatureSetProducer | dict[str, Any] | None) -> None:
        self._producer = _as_model(producer, "producer", FeatureSetProducer)


__all__ = [
    "RUN_ID_PLACE_HOLDER",
    "DataSource",
    "DataTarget",
    "DataTargetBase",
    "FeatureSetProducer",
    "HyperParamOptions",
    "HyperParamStrategies",
    "ModelObj",
    "Notification",
    "NotificationKind",
    "NotificationLimits",
    "NotificationList",
    "NotificationSeverity",
    "NotificationStatus",
    "Retry",
    "RetryBackoff",
    "RunMetadata",
    "RunObject",
    "RunSpec",
    "RunStates",
    "RunStatus",
    "RunTemplate",
    "TargetPathObject",
    "enrich_default_params",
    "new_task",
]
