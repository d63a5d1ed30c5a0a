"""Property tests: a site file mangled any way, or any YAML at all, is either a valid config or a
ConfigError whose every issue names the file and a line; never another exception."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from gateway.config import ConfigError, GatewayConfig, parse_config

BOUNDED = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DEMO = (Path(__file__).parents[2] / "deploy" / "examples" / "demo-estate.yaml").read_text(encoding="utf-8")
ENV = {"DEMO_API_TOKEN": "t" * 32, "DEMO_LINK_SECRET": "s" * 32, "DEMO_CAMERA_TOKEN": "c" * 32}
LINES = DEMO.splitlines()
TOKENS = [
    "", "~", "null", "-1", "0", "99999999999999999999999", ".nan", ".inf", "-.inf", "[]", "{}", "[1, 2",
    "{a: 1", "'unterminated", '"\\x"', "&a [*a]", "*nowhere", "!!python/object:os.system", "!!binary AAAA",
    "2026-11-23", "2026-11-23T10:00:00Z", "yes", "0x1F", "0o17", "1e999", "${UNSET}", "${}", "\t", "? [a, b]",
    "<<: {x: 1}", "|\n  text", ">-", "%YAML 1.1", "---", "...", "\x00", "\x85", "\ufeff", "粤B12345",
    "a: b: c", "- - -", "x" * 10_000,
]  # fmt: skip


def _check(text: str) -> None:
    try:
        config = parse_config(text, "site.yaml", ENV)
    except ConfigError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.file == "site.yaml"
            assert issue.line is not None and issue.line >= 1, issue
            assert str(issue).startswith("site.yaml:")
        return
    assert isinstance(config, GatewayConfig)


def test_the_demo_site_is_valid() -> None:
    assert isinstance(parse_config(DEMO, "site.yaml", ENV), GatewayConfig)


@st.composite
def mangled_demo(draw: st.DrawFn) -> str:
    """The demo site with up to five line edits: a value replaced, a line dropped, duplicated,
    re-indented, or a hostile token inserted."""
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["value", "value", "drop", "dup", "indent", "insert", "cut"]))
        line = lines[i]
        if op == "value" and ":" in line:
            key = line.split(":", 1)[0]
            lines[i] = f"{key}: {draw(st.sampled_from(TOKENS) | st.text(max_size=20))}"
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, line)
        elif op == "indent":
            lines[i] = " " * draw(st.integers(0, 9)) + line.lstrip()
        elif op == "insert":
            lines.insert(i, draw(st.sampled_from(TOKENS)))
        else:
            lines[i] = line[: draw(st.integers(0, len(line)))]
        if not lines:
            break
    return "\n".join(lines)


@settings(BOUNDED, max_examples=60)  # each parse validates the whole demo site: ~0.1 s
@given(text=mangled_demo())
def test_a_mangled_site_file_is_config_or_config_error(text: str) -> None:
    _check(text)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15,
)


def _dump(value: object) -> str:
    out = io.StringIO()
    YAML(typ="safe").dump(value, out)
    return out.getvalue()


@BOUNDED
@given(doc=yaml_values, raw=st.text(max_size=200))
def test_any_yaml_or_text_is_config_or_config_error(doc: object, raw: str) -> None:
    _check(_dump(doc))
    _check(_dump({"gateway_id": "gw", "estates": doc}))
    _check(raw)


def test_hostile_documents_are_config_errors() -> None:
    deep = "a:\n" + "".join("  " * i + "- \n" for i in range(1, 400))
    for text in [
        "a: &x [*x]\n",  # a recursive alias
        "gateway_id: &g [*g]\nestates: []\n",
        "[" * 600,  # ruamel recurses per level (and slows quadratically: 5000 levels take ~15 s)
        "{" * 600,
        deep,
        "\x00\x01",
        "a: 1\na: 2\n",  # duplicate keys
        "- 1\n- 2\n",
        "!!python/object/apply:os.system ['true']\n",
        "gateway_id: x\n" + "a" * 200_000 + ": 1\n",
    ]:
        _check(text)
