"""Write every dashboard to dashboards/json/<uid>.json (the files Grafana's file provider loads).

.venv/bin/python -m dashboards.generate          # regenerate
.venv/bin/python -m dashboards.generate --check  # exit 1 when the committed JSON differs from the code
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python dashboards/generate.py`: make `dashboards` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards.boards import BOARDS

JSON_DIR = Path(__file__).resolve().parent / "json"

__all__ = ["JSON_DIR", "main", "render_all"]


def render_all() -> dict[str, str]:
    """File name → text, for every dashboard."""
    rendered: dict[str, str] = {}
    for module in BOARDS:
        board = module.build()
        rendered[f"{board.uid}.json"] = board.render()
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed files, write nothing"
    )
    args = parser.parse_args(argv)
    rendered = render_all()
    stale = sorted(
        name for name, text in rendered.items()
        if not (JSON_DIR / name).is_file() or (JSON_DIR / name).read_text(encoding="utf-8") != text
    )  # fmt: skip
    extra = sorted(p.name for p in JSON_DIR.glob("*.json") if p.name not in rendered)
    if args.check:
        for name in stale + extra:
            print(f"out of date: dashboards/json/{name}", file=sys.stderr)
        return 1 if stale or extra else 0
    JSON_DIR.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (JSON_DIR / name).write_text(rendered[name], encoding="utf-8")
        print(f"wrote dashboards/json/{name}")
    for name in extra:
        (JSON_DIR / name).unlink()
        print(f"removed dashboards/json/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
