"""Charts for the printed report as inline SVG, drawn on the server: no script, no font or CDN fetch, and
the same picture on screen, in print and in a PDF."""

from __future__ import annotations

from datetime import date
from html import escape

FONT = "font-family=\"'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei',sans-serif\""


def _num(x: float) -> str:
    return f"{x:.1f}"


def line_chart(
    days: list[date],
    series: list[tuple[str, str, list[float | None]]],
    width: int = 680,
    height: int = 230,
    target: float | None = None,
    target_label: str = "",
) -> str:
    """Daily series (label, colour, one value or None per day) on a 0-100 % scale zoomed to the data."""
    left, right, top, bottom = 44, 12, 34, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    seen = [v for _, _, values in series for v in values if v is not None]
    low = min([*seen, 100.0])
    lo = 0.0 if low < 50 else max(0.0, min(90.0, (low // 5) * 5))
    n = max(1, len(days))

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (100 - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" class="chart" {FONT} font-size="10">']  # fmt: skip
    steps = 5
    for k in range(steps + 1):
        v = lo + (100 - lo) * k / steps
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y(v))}" y2="{_num(y(v))}" '
                     f'stroke="#d0d7de" stroke-width="0.6"/>')  # fmt: skip
        parts.append(
            f'<text x="{left - 4}" y="{_num(y(v) + 3)}" text-anchor="end" fill="#57606a">{v:.0f}%</text>'
        )
    if target is not None and lo <= target <= 100:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y(target))}" y2="{_num(y(target))}" '
                     f'stroke="#bf8700" stroke-dasharray="4 3" stroke-width="1"/>')  # fmt: skip
    for i, day in enumerate(days):
        if i % 2 == 0 or n <= 16:
            parts.append(f'<text x="{_num(x(i))}" y="{height - 8}" text-anchor="middle" fill="#57606a">'
                         f"{day.day}</text>")  # fmt: skip
    for s, (label, colour, values) in enumerate(series):
        points = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{_num(px)},{_num(py)}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        for px, py in points:
            parts.append(f'<circle cx="{_num(px)}" cy="{_num(py)}" r="2" fill="{colour}"/>')
        lx = left + s * 160
        parts.append(f'<rect x="{lx}" y="8" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14}" y="17" fill="#24292f">{escape(label)}</text>')
    if target_label and target is not None and lo <= target <= 100:
        parts.append(f'<text x="{width - right}" y="{_num(y(target) + 11)}" text-anchor="end" fill="#9a6700">'
                     f"{escape(target_label)}</text>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(bars: list[tuple[str, float, str]], width: int = 320, height: int = 170) -> str:
    """Vertical bars (label, value, colour) with the value above each bar."""
    left, right, top, bottom = 10, 10, 18, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([v for _, v, _ in bars] + [1.0])
    slot = plot_w / max(1, len(bars))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" class="chart" {FONT} font-size="11">']  # fmt: skip
    parts.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#8c959f"/>'
    )
    for i, (label, value, colour) in enumerate(bars):
        h = plot_h * value / peak
        bx = left + i * slot + slot * 0.2
        parts.append(f'<rect x="{_num(bx)}" y="{_num(top + plot_h - h)}" width="{_num(slot * 0.6)}" '
                     f'height="{_num(h)}" fill="{colour}"/>')  # fmt: skip
        cx = _num(bx + slot * 0.3)
        parts.append(f'<text x="{cx}" y="{_num(top + plot_h - h - 4)}" text-anchor="middle" fill="#24292f">'
                     f"{value:g}</text>")  # fmt: skip
        parts.append(
            f'<text x="{cx}" y="{height - 8}" text-anchor="middle" fill="#57606a">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
