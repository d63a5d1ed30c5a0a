"""Integer formulas over named values, e.g. `(loop - 1) * 400 + device - 1`, for site-table templates.

A register map is arithmetic on a row's numbers (loop, device, register, slot). Writing that arithmetic
in the profile keeps vendor knowledge in data; evaluating it with `eval` would let a profile run code.
So the formula is parsed once with `ast` and only integers, names, parentheses and `+ - * // %` (and a
unary minus) are accepted; anything else is refused when the profile loads.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from functools import lru_cache

__all__ = ["FormulaError", "evaluate", "formula_names"]

_BINARY: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


class FormulaError(ValueError):
    """A formula that is not plain integer arithmetic, or that cannot be computed for a row."""


@lru_cache(maxsize=256)
def _parse(text: str) -> ast.expr:
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise FormulaError(f"formula {text!r} is not arithmetic: {exc.msg}") from exc
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
            raise FormulaError(f"formula {text!r}: only + - * // % are allowed")
        if isinstance(node, ast.Constant) and (
            isinstance(node.value, bool) or not isinstance(node.value, int)
        ):
            raise FormulaError(f"formula {text!r}: only whole numbers are allowed, not {node.value!r}")
        if not isinstance(
            node, ast.BinOp | ast.UnaryOp | ast.USub | ast.Constant | ast.Name | ast.Load | ast.operator
        ):
            raise FormulaError(f"formula {text!r}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.USub):
            raise FormulaError(f"formula {text!r}: only a leading minus is allowed")
    return tree


def formula_names(text: str) -> frozenset[str]:
    """The names a formula uses; raises FormulaError when it is not plain integer arithmetic."""
    return frozenset(node.id for node in ast.walk(_parse(text)) if isinstance(node, ast.Name))


def evaluate(text: str, values: Mapping[str, int]) -> int:
    """The formula's value for these names (a name it needs but is not given raises FormulaError)."""
    return _evaluate(_parse(text), values, text)


def _evaluate(node: ast.expr, values: Mapping[str, int], text: str) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in values:
            raise FormulaError(f"formula {text!r}: no number named {node.id!r}")
        return values[node.id]
    if isinstance(node, ast.UnaryOp):
        return -_evaluate(node.operand, values, text)
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, values, text), _evaluate(node.right, values, text)
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError as exc:
            raise FormulaError(f"formula {text!r} divides by zero") from exc
    raise FormulaError(f"formula {text!r}: {type(node).__name__} is not allowed")  # refused by _parse
