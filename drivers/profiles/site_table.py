"""Site tables: the rows of a commissioning spreadsheet (CSV) become a fire panel's points through the
profile's template (site_template.py).

Every row is checked (cell values, a device given twice, two rows reading the same bits), all problems
are reported at once by the CSV's file and line (`site.csv:14 device: must be 1..159 (got 160)`), and the
rest of the gateway gets ordinary `ModbusPoint`s with `label` and `zone`. Lines starting with # and blank
lines are skipped; the first other line is the header, naming the columns (extra columns are ignored).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterator
from pathlib import Path

from pydantic import ValidationError

from drivers.profiles.formula import FormulaError, evaluate
from drivers.profiles.schema import ModbusPoint
from drivers.profiles.site_template import (
    IntColumn,
    Row,
    SiteTemplate,
    TextColumn,
    WordColumn,
    error_key,
    error_message,
)

__all__ = ["SiteTableError", "expand_site_table"]

MAX_PROBLEMS = 30  # a wrong delimiter fails every row: show enough to see the pattern, not a thousand
Register = tuple[str, int]  # (table, address)


class SiteTableError(Exception):
    """The site table cannot be read, or rows in it are wrong; the message names file and line."""


class _RowError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def expand_site_table(path: Path, template: SiteTemplate, taken: Collection[str]) -> list[ModbusPoint]:
    """Every row of the CSV at `path` as points; `taken` are the profile's own point names."""
    points: list[ModbusPoint] = []
    problems: list[str] = []
    expansion = _Expansion(template, set(taken))
    for line, cells in _rows(path, template):
        try:
            if isinstance(cells, str):
                raise _RowError("", cells)
            points.extend(expansion.row(cells, line))
        except _RowError as exc:
            problems.append(f"{path}:{line} {exc.key}: {exc}" if exc.key else f"{path}:{line}: {exc}")
    if problems:
        more = len(problems) - MAX_PROBLEMS
        shown = problems[:MAX_PROBLEMS] + ([f"... and {more} more"] if more > 0 else [])
        raise SiteTableError("\n".join(shown))
    if not points:
        raise SiteTableError(f"{path}: the table has a header but no rows")
    return points


class _Expansion:
    """The state that crosses rows: names already given and the register bits already read."""

    def __init__(self, template: SiteTemplate, taken: set[str]) -> None:
        self.template = template
        self.taken = taken
        self.names: dict[str, int] = {}  # device name → line
        self.used: dict[Register, list[tuple[int, str, int]]] = {}  # → (mask, point name, line) per row

    def row(self, cells: dict[str, str], line: int) -> list[ModbusPoint]:
        t = self.template
        row: Row = {}
        for name, column in t.columns.items():
            row.update(_cell(name, column, cells.get(name, "")))
        name, label, zone = (_format(getattr(t, key), row, key) for key in ("name", "label", "zone"))
        if name in self.names:
            raise _RowError("name", f"{name} is already on line {self.names[name]}")
        numbers = {k: v for k, v in row.items() if isinstance(v, int)}
        try:
            address = t.address if isinstance(t.address, int) else evaluate(t.address, numbers)
        except FormulaError as exc:
            raise _RowError("address", str(exc)) from None
        points = []
        for suffix in t.points:
            try:
                points.append(t.point(suffix, row, name, address, label, zone))
            except FormulaError as exc:
                raise _RowError(suffix, str(exc)) from None
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                raise _RowError(".".join(map(str, (suffix, *error_key(err)))), error_message(err)) from None
        for point in points:
            if point.name in self.taken:
                raise _RowError("name", f"{point.name} is already a point of the profile")
        self._claim(points, line)
        self.names[name] = line
        return points

    def _claim(self, points: list[ModbusPoint], line: int) -> None:
        """Two rows reading the same bits is a copy-paste error in the spreadsheet, never intended."""
        mine: list[tuple[Register, int, str]] = []
        for point in points:
            for key, mask in _footprint(point):
                for other_mask, other, other_line in self.used.get(key, ()):
                    if mask & other_mask:
                        low, high = _span(mask & other_mask)
                        where = f"{key[0]} {key[1]} bits {low}..{high}"
                        raise _RowError("address", f"{where} are already read by {other} (line {other_line})")
                mine.append((key, mask, point.name))
        for key, mask, name in mine:
            self.used.setdefault(key, []).append((mask, name, line))


def _rows(path: Path, template: SiteTemplate) -> Iterator[tuple[int, dict[str, str] | str]]:
    """(line, cells by column, or what is wrong with the row) of every data row; blank lines and lines
    starting with # are skipped."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SiteTableError(f"{path}: cannot read the site table: {exc.strerror or exc}") from exc
    try:
        text = raw.decode(
            "utf-8-sig" if template.encoding.lower() in ("utf-8", "utf8") else template.encoding
        )
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SiteTableError(
            f"{path}:{line}: not {template.encoding} text (save it as 'CSV UTF-8', "
            "or set site_template.encoding, e.g. gb18030)"
        ) from exc
    except LookupError as exc:
        raise SiteTableError(f"{path}: unknown encoding {template.encoding!r}") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    for cells in reader:
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        line = reader.line_num
        if header is None:
            header = [c.strip() for c in cells]
            _check_header(path, line, header, template)
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            yield line, f"{len(cells)} cells, the header has {len(header)} (a stray comma?)"
            continue
        yield line, {name: cell.strip() for name, cell in zip(header, cells, strict=False) if name}
    if header is None:
        raise SiteTableError(f"{path}: empty; the first row names the columns: {', '.join(template.columns)}")


def _check_header(path: Path, line: int, header: list[str], template: SiteTemplate) -> None:
    """Every template column once; other columns (notes, 备注) are allowed and ignored."""
    for name in template.columns:
        if header.count(name) != 1:
            problem = "is missing" if name not in header else "appears twice"
            raise SiteTableError(
                f"{path}:{line}: column {name!r} {problem} in the header (it has: {', '.join(header)})"
            )


def _cell(name: str, column: IntColumn | WordColumn | TextColumn, cell: str) -> Row:
    if isinstance(column, TextColumn):
        if column.required and not cell:
            raise _RowError(name, "is empty")
        return {name: cell}
    if isinstance(column, WordColumn):
        word = next((w for w in column.words if w.casefold() == cell.casefold()), None)
        if word is None:
            raise _RowError(name, f"{cell!r} is not one of {', '.join(column.words)}")
        return {name: word, **column.words[word]}
    if not cell:
        raise _RowError(name, "is empty")
    try:
        value = int(cell)
    except ValueError:
        raise _RowError(name, f"{cell!r} is not a whole number") from None
    low, high = column.min, column.max
    if (low is not None and value < low) or (high is not None and value > high):
        allowed = (
            f"{low}..{high}"
            if low is not None and high is not None
            else (f">= {low}" if low is not None else f"<= {high}")
        )
        raise _RowError(name, f"must be {allowed} (got {value})")
    return {name: value}


def _format(template: str, row: Row, key: str) -> str:
    try:
        return template.format(**row)
    except (KeyError, IndexError, ValueError) as exc:
        raise _RowError(key, f"cannot fill {template!r}: {exc}") from None


def _footprint(point: ModbusPoint) -> list[tuple[Register, int]]:
    if point.bit is not None:
        mask = 1 << point.bit
    elif point.bits is not None:
        mask = ((1 << point.bits.width) - 1) << point.bits.start
    else:
        mask = 0xFFFF
    return [((point.table, point.address + i), mask) for i in range(point.words)]


def _span(mask: int) -> tuple[int, int]:
    return (mask & -mask).bit_length() - 1, mask.bit_length() - 1
