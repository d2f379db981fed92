"""A Jinja2 sandbox for notification conditions that bounds what a hostile condition may cost.

On top of ``ImmutableSandboxedEnvironment`` (no dunder access, no mutation of lists/dicts/sets):

* ``range`` is capped at ``max_range`` items; ``lipsum`` is not available;
* ``*``, ``+``, ``**`` and ``%`` are intercepted: strings, bytes and containers they build may not
  exceed ``max_size`` (characters, or expanded items for containers), integers ``max_int_bits``,
  and ``%`` / ``str.format`` / ``|format`` specs may not ask for huge widths;
* ``~``, list/tuple/dict literals, every call (methods, macros, ``loop(...)``) and every filter
  result is checked against ``max_size``; ``str`` methods that pad or multiply are pre-checked;
* every loop iteration, call and filter is a render step (``max_steps``); loop bodies charge their
  literal text and ``{{ … }}`` charges its text to ``max_emitted``; the final output is capped at
  ``max_output``; a wall-clock deadline (``max_seconds``) is checked at every step as a backstop;
* access to an unsafe attribute raises ``SecurityError`` at once instead of rendering as empty.

Limits live in a per-render budget (a context variable), so one compiled template serves every
render and the cheap path (no loops, calls or intercepted operators) pays almost nothing.
"""

from __future__ import annotations

import inspect
import re
import string
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Template, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from runherald.sandbox_budget import (
    _BUDGET,
    _CONTAINERS,
    _TEXTS,
    DEFAULT_LIMITS,
    ConditionLimits,
    InvalidCondition,
    LimitExceeded,
    _Budget,
    _check_count,
    _check_size,
    _limits,
    _step,
    describe_error,
    weight_of,
)

_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)
_FORMAT_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?")


def _check_printf(fmt: str | bytes) -> None:
    """Reject %-format widths and precisions that would build huge strings."""
    text = fmt if isinstance(fmt, str) else fmt.decode("latin-1")
    for match in _PRINTF_SPEC.finditer(text):
        for number in match.group(1, 2):
            if number == "*":
                raise LimitExceeded("'*' widths are not allowed in % formatting")
            if number:
                _check_count(int(number), "format width")


def _check_format_string(fmt: str) -> None:
    """Reject str.format specs that nest fields or ask for huge widths."""
    for _literal, _field, spec, _conversion in string.Formatter().parse(fmt):
        if not spec:
            continue
        if "{" in spec:
            raise LimitExceeded("nested fields in format specs are not allowed")
        match = _FORMAT_SPEC.match(spec)
        if match:
            for number in match.group(1, 2):
                if number:
                    _check_count(int(number), "format width")


def _check_text_method(text: str | bytes | bytearray, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pre-check the str/bytes methods that can build results much larger than their inputs."""
    limit = _limits().max_size
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _check_count(args[0], f"{name}() width")
    elif name == "expandtabs":
        size = args[0] if args and isinstance(args[0], int) else 8
        tab = "\t" if isinstance(text, str) else b"\t"
        if len(text) + text.count(tab) * size > limit:  # type: ignore[arg-type]
            raise LimitExceeded(f"expandtabs() result would be larger than {limit}")
    elif name == "replace" and len(args) >= 2:
        _check_replace(text, args[0], args[1], args[2] if len(args) > 2 else -1)
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], list | tuple) else list(args[0])
        _check_join(items, len(text))
        return (items, *args[1:])
    return args


def _check_replace(text: Any, old: Any, new: Any, count: Any) -> None:
    if not isinstance(text, _TEXTS) or not isinstance(old, _TEXTS) or not isinstance(new, _TEXTS):
        return
    hits = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    limit = _limits().max_size
    if len(text) + hits * len(new) > limit:
        raise LimitExceeded(f"replace() result would be larger than {limit}")


def _check_join(items: list[Any] | tuple[Any, ...], separator: int) -> None:
    limit = _limits().max_size
    total = separator * len(items)
    for item in items:
        total += weight_of(item)
        if total > limit:
            raise LimitExceeded(f"join() result would be larger than {limit}")


def _pre_join(args: dict[str, Any]) -> None:
    value = args["value"]
    items = value if isinstance(value, list | tuple) else list(value)
    args["value"] = items
    _check_join(items, len(str(args.get("d", ""))))


def _pre_indent(args: dict[str, Any]) -> None:
    text = args["s"] if isinstance(args["s"], str) else str(_check_size(args["s"], "indent() input"))
    width = args["width"]
    pad = len(width) if isinstance(width, str) else width
    if isinstance(pad, int):
        _check_count(pad * (text.count("\n") + 1) + len(text), "indent() result")


def _pre_wordwrap(args: dict[str, Any]) -> None:
    text = args["s"]
    wrap = args["wrapstring"]
    if isinstance(text, str) and isinstance(wrap, str):
        _check_count(len(text) * (len(wrap) + 1), "wordwrap() result")


_FILTER_PRECHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": lambda a: _check_count(a["width"], "center() width"),
    "indent": _pre_indent,
    "replace": lambda a: _check_replace(a["s"], a["old"], a["new"], a["count"]),
    "wordwrap": _pre_wordwrap,
    "join": _pre_join,
    "batch": lambda a: _check_count(a["linecount"], "batch() size"),
    "slice": lambda a: _check_count(a["slices"], "slice() count"),
    "format": lambda a: _check_printf(a["value"]) if isinstance(a["value"], str) else None,
}


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a builtin filter: count a step, pre-check amplifying arguments, bound the result."""
    pass_arg = getattr(getattr(func, "jinja_pass_arg", None), "name", None)
    precheck = _FILTER_PRECHECKS.get(name)
    signature = inspect.signature(func) if precheck else None

    @pass_context
    def guarded(context: Context, *args: Any, **kwargs: Any) -> Any:
        _step()
        first: tuple[Any, ...] = ()
        if pass_arg == "context":
            first = (context,)
        elif pass_arg == "eval_context":
            first = (context.eval_ctx,)
        elif pass_arg == "environment":
            first = (context.environment,)
        if precheck is not None and signature is not None:
            bound = signature.bind(*first, *args, **kwargs)
            bound.apply_defaults()
            precheck(bound.arguments)
            return _check_size(func(*bound.args, **bound.kwargs), f"|{name} result")
        return _check_size(func(*first, *args, **kwargs), f"|{name} result")

    guarded.__name__ = f"guarded_{name}"
    return guarded


@pass_context
def _loop_guard(context: Context, iterable: Any, text: int = 0) -> Iterator[Any]:
    """Count each iteration of a for loop against the render budget."""
    budget = _BUDGET.get()
    if budget is None:
        return iter(iterable)
    return budget.counted(iterable, text)


@pass_context
def _literal_guard(context: Context, value: Any) -> Any:
    """Bound list/tuple/dict literals (they may repeat large values)."""
    _step()
    return _check_size(value, "literal")


def _bounded_range(*args: int) -> range:
    """range() capped at max_range items."""
    result = range(*args)
    limit = _limits().max_range
    if len(result) > limit:
        raise LimitExceeded(f"range of {len(result)} items is larger than {limit}")
    return result


def _own_text(body: Iterable[nodes.Node]) -> int:
    """Literal template text a body emits itself, not counting nested loops, macros and call blocks."""
    total = 0
    for node in body:
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif not isinstance(node, nodes.For | nodes.Macro | nodes.CallBlock):
            total += _own_text(node.iter_child_nodes())
    return total


class _Guards(NodeTransformer):
    """Rewrite a parsed condition so loops are counted and literals are bounded."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        if node.recursive:
            raise TemplateSyntaxError("recursive loops are not allowed in conditions", node.lineno)
        text = _own_text(node.body)
        node.iter = nodes.Filter(
            node.iter,
            "_runherald_loop",
            [nodes.Const(text, lineno=node.lineno)],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        return node

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node
        return nodes.Filter(node, "_runherald_literal", [], [], None, None, lineno=node.lineno)

    visit_List = visit_Tuple = visit_Dict = _literal


class _GuardedCodeGenerator(CodeGenerator):
    """Route `~` through the environment so its result is bounded."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_values((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class ConditionSandbox(ImmutableSandboxedEnvironment):
    """The Jinja2 environment notification conditions are compiled in."""

    code_generator_class = _GuardedCodeGenerator
    intercepted_binops = frozenset(["*", "+", "**", "%"])

    def __init__(self) -> None:
        super().__init__(autoescape=False, finalize=self._finalize_output)
        self.globals.pop("lipsum", None)
        self.globals["range"] = _bounded_range
        for name, func in list(self.filters.items()):
            self.filters[name] = _guard_filter(name, func)
        self.filters["_runherald_loop"] = _loop_guard
        self.filters["_runherald_literal"] = _literal_guard

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        _Guards().visit(tree)
        tree.set_environment(self)
        return tree

    @staticmethod
    def _finalize_output(value: Any) -> str:
        """Convert a `{{ … }}` value to text, bounding its size and charging it as emitted."""
        text = value if isinstance(value, str) else str(_check_size(value, "output value"))
        budget = _BUDGET.get()
        if budget is not None:
            budget.emit(len(text))
        return text

    def concat_values(self, values: tuple[Any, ...]) -> str:
        """The `~` operator, with its result bounded."""
        _step()
        limit = _limits().max_size
        if sum(weight_of(value) for value in values) > limit:
            raise LimitExceeded(f"~ result is larger than {limit}")
        return "".join([str(value) for value in values])

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Fail at once on unsafe attributes (instead of rendering them as empty)."""
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """`*`, `+`, `**` and `%` with their results bounded before they are built."""
        _step()
        limits = _limits()
        if operator == "*":
            _check_product(left, right, limits)
        elif operator == "+":
            if isinstance(left, _TEXTS + _CONTAINERS) and isinstance(right, _TEXTS + _CONTAINERS):
                if weight_of(left) + weight_of(right) > limits.max_size:
                    raise LimitExceeded(f"+ result is larger than {limits.max_size}")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                if abs(left).bit_length() * right > limits.max_int_bits:
                    raise LimitExceeded(f"** result is larger than {limits.max_int_bits} bits")
        elif operator == "%" and isinstance(left, str | bytes):
            _check_printf(left)
        return _check_size(self.binop_table[operator](left, right), f"{operator} result")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Every call is a step; loop(...) is counted, amplifying text methods pre-checked."""
        _step()
        owner = getattr(__obj, "__self__", None)
        if isinstance(__obj, LoopContext):
            raise SecurityError("recursive loops are not allowed in conditions")
        if isinstance(owner, _TEXTS) and isinstance(__obj, types.BuiltinMethodType):
            args = _check_text_method(owner, __obj.__name__, args)
        wrapped = getattr(__obj, "__wrapped__", None)
        if isinstance(getattr(wrapped, "__self__", None), str):
            _check_format_string(wrapped.__self__)  # type: ignore[union-attr]
            for value in (*args, *kwargs.values()):
                _check_size(value, "format() argument")
        return _check_size(super().call(__context, __obj, *args, **kwargs), "call result")


def _check_product(left: Any, right: Any, limits: ConditionLimits) -> None:
    """Reject `*` results over the size or integer limits before building them."""
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > limits.max_int_bits:
            raise LimitExceeded(f"* result is larger than {limits.max_int_bits} bits")
        return
    sequence, count = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(count, int) and isinstance(sequence, _TEXTS + _CONTAINERS) and count > 0:
        if count > limits.max_size or weight_of(sequence) * count > limits.max_size:
            raise LimitExceeded(f"* result is larger than {limits.max_size}")


_SANDBOX = ConditionSandbox()


class CompiledCondition:
    """A compiled condition and the globals every render of it starts from."""

    __slots__ = ("globals", "template")

    def __init__(self, template: Template) -> None:
        self.template = template
        self.globals = dict(template.globals)  # flattened once: Jinja's ChainMap is slow per render

    def render(self, context: Mapping[str, Any], limits: ConditionLimits) -> str:
        """Render within limits; raises on any render error."""
        template = self.template
        jinja_context = Context(
            template.environment, {**self.globals, **context}, template.name, template.blocks
        )
        token = _BUDGET.set(_Budget(limits))
        try:
            parts = []
            size = 0
            for part in template.root_render_func(jinja_context):
                size += len(part)
                if size > limits.max_output:
                    raise LimitExceeded(f"condition rendered more than {limits.max_output} characters")
                parts.append(part)
            return "".join(parts)
        finally:
            _BUDGET.reset(token)


@lru_cache(maxsize=1024)
def compile_condition(source: str) -> CompiledCondition | str:
    """The compiled condition for a source, or why it does not compile; cached by source."""
    if len(source) > DEFAULT_LIMITS.max_source:
        return f"condition is longer than {DEFAULT_LIMITS.max_source} characters"
    try:
        return CompiledCondition(_SANDBOX.from_string(source))
    except Exception as exc:  # syntax errors, guards raised while parsing, deep nesting
        return describe_error(exc)


def validate_condition(source: str) -> str | None:
    """Why a condition source cannot be compiled, or None if it can."""
    compiled = compile_condition(source)
    return compiled if isinstance(compiled, str) else None


def render_condition(
    source: str, context: Mapping[str, Any], limits: ConditionLimits = DEFAULT_LIMITS
) -> str:
    """Render a condition in the sandbox within its limits; raises on any render error."""
    compiled = compile_condition(source)
    if isinstance(compiled, str):
        raise InvalidCondition(compiled)
    return compiled.render(context, limits)
