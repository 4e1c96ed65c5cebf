"""The safe expression language of manifests: conditions and templates in pipelines and skill contracts.

`input.amount > 100 and not context.vip`, `steps.fetch.output.items | length > 0`,
`"Dear {{ input.name | upper }}"`. Expressions are parsed with Python's `ast` and checked against an
allow-list before anything runs: literals, names, field and index access on data, comparisons, `and` /
`or` / `not`, arithmetic (`+ - * / // %`), and the functions below, called directly or as filters
(`x | f(arg)` is `f(x, arg)`). Nothing else: no other calls, no lambdas or comprehensions, no names or
fields starting with `_` (so no dunders), no `**`; at most `MAX_LENGTH` characters and `MAX_DEPTH`
levels of nesting. Field access reads dict keys only (never Python attributes); a missing key, an index
past the end, and any access on null give null, so `x.y | default('n')` works.

Every error names the expression and the 1-based position in it where the problem is.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetplane.manifests.expression_values import (
    FUNCTION_LIST,
    FUNCTIONS,
    contains,
    is_number,
    to_text,
    type_name,
)

MAX_LENGTH = 1000
MAX_DEPTH = 32
MAX_RESULT = 100_000  # characters or items an operator may build
LITERAL_NAMES = {"true": True, "false": False, "null": None, "none": None}


_REFUSED = {
    ast.Lambda: "lambda",
    ast.IfExp: "a conditional expression (x if c else y)",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.NamedExpr: "assignment (:=)",
    ast.JoinedStr: "an f-string",
    ast.Starred: "unpacking (*)",
    ast.Set: "a set",
    ast.Await: "await",
    ast.Yield: "yield",
}
_BINARY: dict[type[ast.operator], str] = {
    ast.Add: "add",
    ast.Sub: "subtract",
    ast.Mult: "multiply",
    ast.Div: "divide",
    ast.FloorDiv: "divide",
    ast.Mod: "take the remainder of",
}


class ExprError(ValueError):
    """A refused or failing expression: what is wrong, in which expression, at which position (1-based)."""

    def __init__(self, message: str, expression: str, position: int) -> None:
        self.message = message
        self.expression = expression
        self.position = position
        super().__init__(f"{message} in {expression!r} at position {position}")


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.expr = field(repr=False)
    step_refs: frozenset[str] = frozenset()  # the step ids it reads (`steps.<id>`)
    names: frozenset[str] = frozenset()  # the top-level names it reads

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return _Evaluator(self.source, scope).eval(self.tree)


def compile_expr(source: str, *, names: Collection[str] | None = None) -> Expression:
    """Parse and check `source` (surrounding blanks dropped); `names` limits the top-level names."""
    shown = source.strip()
    if not shown:
        raise ExprError("an empty expression", source, 1)
    if len(shown) > MAX_LENGTH:
        raise ExprError(
            f"the expression is too long ({len(shown)} characters; at most {MAX_LENGTH})", shown, 1
        )
    # Newlines become spaces so that a node's column is its offset in the text.
    try:
        tree = ast.parse(shown.replace("\n", " ").replace("\r", " "), mode="eval")
    except SyntaxError as exc:
        message = "invalid syntax" if exc.msg == "invalid syntax" else f"invalid syntax: {exc.msg}"
        raise ExprError(message, shown, exc.offset or 1) from None
    checker = _Checker(shown, names)
    checker.visit(tree.body, 1)
    return Expression(shown, tree.body, frozenset(checker.step_refs), frozenset(checker.names))


class _AttrName(ast.AST):
    """Where a field name of `a.b` stands, for errors about the field rather than the whole access."""

    def __init__(self, node: ast.Attribute) -> None:
        super().__init__()
        self.col_offset = (node.end_col_offset or 0) - len(node.attr)


class _Checker:
    def __init__(self, source: str, names: Collection[str] | None) -> None:
        self.source = source
        self.allowed = names
        self.step_refs: set[str] = set()
        self.names: set[str] = set()

    def fail(self, node: ast.AST, message: str) -> ExprError:
        return ExprError(message, self.source, getattr(node, "col_offset", 0) + 1)

    def visit(self, node: ast.AST, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"the expression is nested too deeply (at most {MAX_DEPTH} levels)")
        for kind, what in _REFUSED.items():
            if isinstance(node, kind):
                raise self.fail(node, f"{what} is not allowed")
        children: list[ast.AST]
        if isinstance(node, ast.Constant):
            if not (node.value is None or isinstance(node.value, str | int | float | bool)):
                raise self.fail(node, f"a {type(node.value).__name__} literal is not allowed")
            children = []
        elif isinstance(node, ast.Name):
            self._name(node)
            children = []
        elif isinstance(node, ast.Attribute):
            self._field(_AttrName(node), node.attr)
            self._step_ref(node.value, node.attr)
            children = [node.value]
        elif isinstance(node, ast.Subscript):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                self._field(node.slice, node.slice.value)
                self._step_ref(node.value, node.slice.value)
            children = [node.value, node.slice]
        elif isinstance(node, ast.Slice):
            children = [c for c in (node.lower, node.upper, node.step) if c is not None]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            children = [node.left, *self._filter(node.right)]
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise self.fail(node, f"the operator {_op_symbol(node.op)} is not allowed")
            children = [node.left, node.right]
        elif isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Invert):
                raise self.fail(node, "the operator ~ is not allowed")
            children = [node.operand]
        elif isinstance(node, ast.BoolOp | ast.Compare):
            children = list(node.values) if isinstance(node, ast.BoolOp) else [node.left, *node.comparators]
        elif isinstance(node, ast.List | ast.Tuple):
            children = list(node.elts)
        elif isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise self.fail(node, "unpacking (**) is not allowed")
            children = [*(k for k in node.keys if k is not None), *node.values]
        elif isinstance(node, ast.Call):
            children = self._call(node, node.func, list(node.args), node.keywords, 0)
        else:
            raise self.fail(node, f"{type(node).__name__} is not allowed")
        for child in children:
            self.visit(child, depth + 1)

    def _name(self, node: ast.Name) -> None:
        if node.id.startswith("_"):
            raise self.fail(
                node, f"the name '{node.id}' is not allowed (names starting with '_' are private)"
            )
        if node.id in LITERAL_NAMES:
            return
        if node.id in FUNCTIONS:
            raise self.fail(
                node, f"'{node.id}' is a function: call it, or use it as a filter (x | {node.id})"
            )
        if self.allowed is not None and node.id not in self.allowed:
            raise self.fail(node, f"unknown name '{node.id}'; known names: {', '.join(sorted(self.allowed))}")
        self.names.add(node.id)

    def _field(self, node: ast.AST, name: str) -> None:
        if name.startswith("_"):
            raise self.fail(node, f"the field '{name}' is not allowed (fields starting with '_' are private)")

    def _step_ref(self, base: ast.AST, name: str) -> None:
        if isinstance(base, ast.Name) and base.id == "steps":
            self.step_refs.add(name)

    def _filter(self, node: ast.AST) -> list[ast.AST]:
        if isinstance(node, ast.Name) and node.id in FUNCTIONS:
            self._arity(node, node.id, 1)
            return []
        if isinstance(node, ast.Call):
            return self._call(node, node.func, list(node.args), node.keywords, 1)
        raise self.fail(node, f"after '|' a filter is expected, one of: {FUNCTION_LIST}")

    def _call(
        self, node: ast.AST, func: ast.AST, args: list[ast.expr], keywords: list[ast.keyword], piped: int
    ) -> list[ast.AST]:
        if not isinstance(func, ast.Name) or func.id not in FUNCTIONS:
            called = func.id if isinstance(func, ast.Name) else ast.unparse(func)
            raise self.fail(node, f"calling '{called}' is not allowed; functions: {FUNCTION_LIST}")
        if keywords:
            raise self.fail(node, f"'{func.id}' takes no keyword arguments")
        self._arity(node, func.id, len(args) + piped)
        return list(args)

    def _arity(self, node: ast.AST, name: str, given: int) -> None:
        _, least, most = FUNCTIONS[name]
        if not least <= given <= most:
            wanted = str(least) if least == most else f"{least} to {most}"
            raise self.fail(node, f"'{name}' takes {wanted} argument{'s' if most != 1 else ''}, not {given}")


def _op_symbol(op: ast.operator) -> str:
    symbols = {ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitXor: "^"}
    return symbols.get(type(op), "@")


class _Evaluator:
    def __init__(self, source: str, scope: Mapping[str, Any]) -> None:
        self.source = source
        self.scope = scope

    def fail(self, node: ast.AST, message: str) -> ExprError:
        return ExprError(message, self.source, getattr(node, "col_offset", 0) + 1)

    def eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return LITERAL_NAMES[node.id] if node.id in LITERAL_NAMES else self.scope.get(node.id)
        if isinstance(node, ast.Attribute):
            return self._get(node, self.eval(node.value), node.attr)
        if isinstance(node, ast.Subscript):
            base = self.eval(node.value)
            if isinstance(node.slice, ast.Slice):
                return self._slice(node, base, node.slice)
            return self._get(node, base, self.eval(node.slice))
        if isinstance(node, ast.BoolOp):
            result: Any = None
            for value in node.values:
                result = self.eval(value)
                if isinstance(node.op, ast.And) != bool(result):
                    return result
            return result
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                return not operand
            if not is_number(operand):
                raise self.fail(node, f"cannot negate {type_name(operand)}")
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.BitOr):
                return self._filter(node)
            return self._arith(node, self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.List | ast.Tuple):
            return [self.eval(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {self._key(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True)}
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)  # the checker allows nothing else
            return self._apply(node, node.func.id, [self.eval(a) for a in node.args])
        raise self.fail(node, f"{type(node).__name__} is not allowed")

    def _key(self, node: ast.expr | None) -> str:
        key = self.eval(node) if node is not None else None
        if not isinstance(key, str):
            raise self.fail(
                node or ast.Constant(None), f"a mapping key must be a string, not {type_name(key)}"
            )
        return key

    def _get(self, node: ast.AST, base: Any, key: Any) -> Any:
        if base is None:
            return None
        if isinstance(base, dict):
            return base.get(key) if isinstance(key, str) else None
        if isinstance(base, list | str) and isinstance(key, int) and not isinstance(key, bool):
            return base[key] if -len(base) <= key < len(base) else None
        shown = repr(key) if isinstance(key, str) else to_text(key)
        raise self.fail(node, f"{type_name(base)} has no field {shown}")

    def _slice(self, node: ast.AST, base: Any, part: ast.Slice) -> Any:
        bounds = [self.eval(b) if b is not None else None for b in (part.lower, part.upper, part.step)]
        if not all(b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in bounds):
            raise self.fail(node, "slice bounds must be whole numbers")
        if base is None:
            return None
        if not isinstance(base, list | str):
            raise self.fail(node, f"cannot slice {type_name(base)}")
        if bounds[2] == 0:
            raise self.fail(node, "a slice step cannot be zero")
        return base[slice(*bounds)]

    def _compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comparator)
            if isinstance(op, ast.Eq | ast.Is):
                ok = left == right
            elif isinstance(op, ast.NotEq | ast.IsNot):
                ok = left != right
            elif isinstance(op, ast.In | ast.NotIn):
                try:
                    ok = contains(right, left) if right is not None else False
                except TypeError as exc:
                    raise self.fail(comparator, f"cannot test membership: {exc}") from None
                ok = ok if isinstance(op, ast.In) else not ok
            else:
                if not (
                    (is_number(left) and is_number(right))
                    or (isinstance(left, str) and isinstance(right, str))
                ):
                    raise self.fail(node, f"cannot compare {type_name(left)} with {type_name(right)}")
                ok = {ast.Lt: left < right, ast.LtE: left <= right, ast.Gt: left > right}.get(
                    type(op), left >= right
                )
            if not ok:
                return False
            left = right
        return True

    def _arith(self, node: ast.BinOp, left: Any, right: Any) -> Any:
        op = type(node.op)
        if is_number(left) and is_number(right):
            try:
                if op is ast.Add:
                    return left + right
                if op is ast.Sub:
                    return left - right
                if op is ast.Mult:
                    return left * right
                if op is ast.Div:
                    return left / right
                return left // right if op is ast.FloorDiv else left % right
            except ZeroDivisionError:
                raise self.fail(node, "division by zero") from None
        same = (isinstance(left, str) and isinstance(right, str)) or (
            isinstance(left, list) and isinstance(right, list)
        )
        if op is ast.Add and same:
            if len(left) + len(right) > MAX_RESULT:
                raise self.fail(node, f"the result is too large (more than {MAX_RESULT})")
            return left + right
        raise self.fail(node, f"cannot {_BINARY[op]} {type_name(left)} and {type_name(right)}")

    def _filter(self, node: ast.BinOp) -> Any:
        value = self.eval(node.left)
        if isinstance(node.right, ast.Name):
            return self._apply(node.right, node.right.id, [value])
        call = node.right
        assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
        return self._apply(call, call.func.id, [value, *(self.eval(a) for a in call.args)])

    def _apply(self, node: ast.AST, name: str, args: list[Any]) -> Any:
        function = FUNCTIONS[name][0]
        try:
            return function(*args)
        except TypeError as exc:
            raise self.fail(node, f"cannot take the {exc}") from None
