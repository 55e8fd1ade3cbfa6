"""The selection language of ``motionpipe filter``: Python-style boolean expressions over metadata columns.

``object_score >= 6 and camera_type == 'static'``, ``camera_type in ['pan_left', 'pan_right']``,
``not static_clip and object_motion > 2 * camera_motion``, ``object_score is not None``.
Parsed with Python's own parser, then only a whitelist of node kinds is turned into a pyarrow compute
expression (nothing is ever evaluated as Python), so every check is on the columns' real types. A
comparison with a null value is null, which never selects the row (SQL semantics): error rows, whose
measurements are null, drop out of any condition on a measurement.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable

import pyarrow.compute as pc

COMPARISONS: dict[type, Callable] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
ARITHMETIC: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
LITERAL_TYPES = (bool, int, float, str)


class ExpressionError(ValueError):
    """The expression cannot select rows: bad syntax, an unknown column, or an unsupported construct."""


def parse_selection(text: str, columns: Iterable[str]) -> pc.Expression:
    """The pyarrow expression for ``text``; ``columns`` are the names it may use."""
    if not text.strip():
        raise ExpressionError("the expression is empty")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ExpressionError(f"cannot parse {text!r}: {error.msg} at column {error.offset}") from None
    return _Translator(text, list(columns)).expression(tree.body)


def columns_used(text: str) -> set[str]:
    """Names an expression refers to (for reading only those columns)."""
    return {node.id for node in ast.walk(ast.parse(text.strip(), mode="eval")) if isinstance(node, ast.Name)}


class _Translator:
    def __init__(self, text: str, columns: list[str]) -> None:
        self.text = text
        self.columns = columns

    def fail(self, node: ast.AST, message: str) -> ExpressionError:
        return ExpressionError(f"{message} (in {ast.get_source_segment(self.text, node) or self.text!r})")

    def expression(self, node: ast.expr) -> pc.Expression:
        if isinstance(node, ast.BoolOp):
            combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
            parts = [self.expression(value) for value in node.values]
            result = parts[0]
            for part in parts[1:]:
                result = combine(result, part)
            return result
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ~self.expression(node.operand)
        if isinstance(node, ast.Compare):
            return self.comparison(node)
        if isinstance(node, ast.Name):
            return self.column(node)
        raise self.fail(node, "expected a comparison, a boolean column, 'and', 'or' or 'not'")

    def comparison(self, node: ast.Compare) -> pc.Expression:
        left, result = node.left, None
        for op, right in zip(node.ops, node.comparators, strict=True):
            part = self.compare(op, left, right)
            result = part if result is None else result & part
            left = right
        return result

    def compare(self, op: ast.cmpop, left: ast.expr, right: ast.expr) -> pc.Expression:
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not (isinstance(right, ast.Constant) and right.value is None):
                raise self.fail(right, "'is' and 'is not' compare with None only")
            null = self.value(left).is_null()
            return null if isinstance(op, ast.Is) else ~null
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right, (ast.List, ast.Tuple, ast.Set)):
                raise self.fail(right, "'in' needs a list of literals, e.g. camera_type in ['pan_left', 'pan_right']")
            member = self.value(left).isin([self.literal(item) for item in right.elts])
            return member if isinstance(op, ast.In) else ~member
        if type(op) not in COMPARISONS:
            raise self.fail(left, f"unsupported comparison {type(op).__name__}")
        return COMPARISONS[type(op)](self.value(left), self.value(right))

    def value(self, node: ast.expr) -> pc.Expression:
        if isinstance(node, ast.Name):
            return self.column(node)
        if isinstance(node, ast.Constant):
            return pc.scalar(self.literal(node))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return pc.negate(self.value(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
            return ARITHMETIC[type(node.op)](self.value(node.left), self.value(node.right))
        raise self.fail(node, "expected a column, a literal or arithmetic (+ - * /) on them")

    def column(self, node: ast.Name) -> pc.Expression:
        if node.id not in self.columns:
            raise ExpressionError(f"unknown column {node.id!r}; columns: {', '.join(self.columns)}")
        return pc.field(node.id)

    def literal(self, node: ast.expr) -> bool | int | float | str:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            value = self.literal(node.operand)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return -value
        if isinstance(node, ast.Constant) and isinstance(node.value, LITERAL_TYPES):
            return node.value
        raise self.fail(node, "expected a number, a string, True or False")
