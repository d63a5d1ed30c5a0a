"""The site-table template: how one row of a commissioning spreadsheet becomes a fire panel's points.

A fire site has hundreds of points with several status bits each; listed one by one in YAML, that is
where mistakes hide. A profile gives the CSV (read by site_table.py) and a *template*, as data:

    site_table: notifier_site_example.csv             # relative to the profile file
    site_template:
      columns:                                         # header names in the CSV, and what a cell may hold
        loop: {type: int, min: 1, max: 10}
        device: {type: int, min: 1, max: 159}
        kind: {type: word, words: {detector: {prefix: D, block: 0}, module: {prefix: M, block: 200}}}
        label: {type: text}
        zone: {type: text}
      name: "L{loop}-{prefix}{device:03}"              # str.format over the row's values
      address: "(loop - 1) * 400 + block + device - 1" # integer formula (drivers/profiles/formula.py)
      label: "{label}"
      zone: "{zone}"
      points:                                          # one point per entry, named <name>.<entry>
        fire: {bit: 11}
        fault: {bit: 13}

A `word` cell is looked up in its table, and the values it carries (here `prefix` and `block`) join the
row's values. Point entries take any ModbusPoint key except name, address, label and zone (set by the
row); `bit`, `bits.start` and `bits.width` may be formulas (GST: `bits: {start: "2 * slot", width: 2}`).

The template is checked when the profile loads, by trying it on a row of allowed values, so an error in
it is reported once, at its line in the profile, not on every row of the CSV.
"""

from __future__ import annotations

import keyword
import string
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from drivers.profiles.formula import FormulaError, evaluate, formula_names
from drivers.profiles.schema import KeyedValueError, ModbusPoint

__all__ = [
    "Column",
    "IntColumn",
    "Row",
    "SiteTemplate",
    "TextColumn",
    "WordColumn",
    "error_key",
    "error_message",
]

FORMULA_KEYS = (("bit",), ("bits", "start"), ("bits", "width"))
SET_BY_ROW = ("name", "address", "label", "zone")
Row = dict[str, int | str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntColumn(_Strict):
    """A whole number, optionally in min..max (a loop, a device address, a register, a slot)."""

    type: Literal["int"]
    min: int | None = Field(None, description="Smallest allowed value")
    max: int | None = Field(None, description="Largest allowed value")


class WordColumn(_Strict):
    """One of a few words; each word carries named values (numbers for formulas, text for names)."""

    type: Literal["word"]
    words: dict[str, dict[str, int | str]] = Field(
        min_length=1, description="Word → the values it carries, e.g. module: {prefix: M, block: 200}"
    )


class TextColumn(_Strict):
    """Free text (a label, a zone)."""

    type: Literal["text"]
    required: bool = Field(False, description="An empty cell is an error")


def _column_type(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("int", "word", "text") else None


Column = Annotated[
    Annotated[IntColumn, Tag("int")]
    | Annotated[WordColumn, Tag("word")]
    | Annotated[TextColumn, Tag("text")],
    Discriminator(
        _column_type,
        custom_error_type="column_type",
        custom_error_message="give type: int (with min, max), word (with words) or text",
    ),
]


class SiteTemplate(_Strict):
    """How one row of the site table becomes points."""

    columns: dict[str, Column] = Field(min_length=1, description="CSV header name → what its cells hold")
    name: str = Field(description="Device name from the row, str.format style, e.g. 'L{loop}-D{device:03}'")
    address: int | str = Field(description="Register of the row's points: a number or an integer formula")
    label: str = Field("", description="Point label from the row, e.g. '{label}' (empty: none)")
    zone: str = Field("", description="Point zone from the row, e.g. '{zone}' (empty: the device's)")
    points: dict[str, dict[str, Any]] = Field(
        min_length=1, description="Point suffix → ModbusPoint keys (bit, bits, enum, type, ...)"
    )
    encoding: str = Field("utf-8", description="Text encoding of the CSV (e.g. gb18030 for an old export)")

    @model_validator(mode="after")
    def _coherent(self) -> SiteTemplate:
        numbers, texts = self._values()
        if isinstance(self.address, str):
            _check_formula(self.address, numbers, ("address",))
        sample = self.sample()
        for key in ("name", "label", "zone"):
            _check_format(getattr(self, key), numbers | texts, sample, (key,))
        for suffix, body in self.points.items():
            if not suffix or any(c.isspace() or c == "." for c in suffix):
                raise KeyedValueError(("points", suffix), "a point suffix is one word (no dots or spaces)")
            for key in SET_BY_ROW:
                if key in body:
                    raise KeyedValueError(("points", suffix, key), "is set by the row, not per point")
            for path in FORMULA_KEYS:
                formula = _get(body, path)
                if isinstance(formula, str):
                    _check_formula(formula, numbers, ("points", suffix, *path))
            try:
                self.point(suffix, sample, "x", 0, "", "")
            except FormulaError as exc:
                raise KeyedValueError(("points", suffix), str(exc)) from None
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                raise KeyedValueError(("points", suffix, *error_key(err)), error_message(err)) from None
        return self

    def _values(self) -> tuple[set[str], set[str]]:
        """Names a row provides: (numbers usable in formulas, the rest), checking they do not clash."""
        numbers: set[str] = set()
        texts: set[str] = set()
        for name, column in self.columns.items():
            if not name.isidentifier() or keyword.iskeyword(name):
                raise KeyedValueError(("columns", name), "a column name must be a plain word (letters, _)")
            (numbers if isinstance(column, IntColumn) else texts).add(name)
        for name, column in self.columns.items():
            if not isinstance(column, WordColumn):
                continue
            first = next(iter(column.words.values()))
            for word, carried in column.words.items():
                if carried.keys() != first.keys():
                    raise KeyedValueError(
                        ("columns", name, "words", word), f"every word must carry {sorted(first)}"
                    )
            for key, value in first.items():
                if not key.isidentifier() or keyword.iskeyword(key) or key in numbers | texts:
                    raise KeyedValueError(("columns", name, "words"), f"{key!r} is not a free plain word")
                (numbers if isinstance(value, int) else texts).add(key)
        return numbers, texts

    def sample(self) -> Row:
        """A row made of allowed values: the template is tried on it when the profile loads."""
        row: Row = {}
        for name, column in self.columns.items():
            if isinstance(column, IntColumn):
                row[name] = column.min if column.min is not None else 0
            elif isinstance(column, WordColumn):
                word, carried = next(iter(column.words.items()))
                row[name] = word
                row.update(carried)
            else:
                row[name] = "x"
        return row

    def point(self, suffix: str, row: Row, name: str, address: int, label: str, zone: str) -> ModbusPoint:
        """The point `suffix` of a row whose device name, address, label and zone are computed."""
        numbers = {k: v for k, v in row.items() if isinstance(v, int)}
        body = _resolve(self.points[suffix], numbers)
        fields = {**body, "name": f"{name}.{suffix}", "address": address, "label": label, "zone": zone}
        return ModbusPoint.model_validate(fields)


def _check_format(template: str, known: set[str], sample: Row, key: tuple[str, ...]) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise KeyedValueError(key, f"{template!r}: {exc}") from None
    for field in fields:
        if field not in known:
            raise KeyedValueError(key, f"{{{field}}} is not a column nor a value a word carries")
    try:
        template.format(**sample)
    except (KeyError, IndexError, ValueError) as exc:
        raise KeyedValueError(key, f"{template!r} cannot be filled: {exc}") from None


def _check_formula(formula: str, numbers: set[str], key: tuple[str, ...]) -> None:
    try:
        names = formula_names(formula)
    except FormulaError as exc:
        raise KeyedValueError(key, str(exc)) from None
    unknown = sorted(names - numbers)
    if unknown:
        raise KeyedValueError(key, f"{unknown[0]!r} is not a number column nor a number a word carries")


def _get(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = body
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _resolve(body: dict[str, Any], numbers: dict[str, int]) -> dict[str, Any]:
    """The point entry with its formulas computed for one row."""
    out = dict(body)
    for path in FORMULA_KEYS:
        formula = _get(out, path)
        if not isinstance(formula, str):
            continue
        if len(path) == 1:
            out[path[0]] = evaluate(formula, numbers)
        else:
            out[path[0]] = {**out[path[0]], path[1]: evaluate(formula, numbers)}
    return out


def error_key(err: Any) -> tuple[str | int, ...]:
    """Where in the point the problem is, including the key a cross-field check names."""
    error = err.get("ctx", {}).get("error")
    return (*err["loc"], *(error.key if isinstance(error, KeyedValueError) else ()))


def error_message(err: Any) -> str:
    """A pydantic error as the engineer reads it, with the value that was refused."""
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key (check spelling)"
    given = err.get("input")
    return (
        f"{message} (got {given})" if isinstance(given, int | str) and err["type"] != "missing" else message
    )
