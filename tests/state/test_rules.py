from __future__ import annotations

import contextlib
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor.state.segments.rules import MAX_DEPTH, MAX_LENGTH, RuleError, RuleSet, compile_rule

NAMES = {"spend_30d", "views_24h", "device", "segment", "bounce_rate", "x"}


def matches(text: str, **values: float | str | None) -> bool:
    return compile_rule(text, NAMES).matches(values)


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("spend_30d > 100", {"spend_30d": 150.0}, True),
        ("spend_30d > 100", {"spend_30d": 100.0}, False),
        ("spend_30d >= 100", {"spend_30d": 100.0}, True),
        ("spend_30d < 1.5", {"spend_30d": 1.25}, True),
        ("spend_30d <= -0.5", {"spend_30d": -0.5}, True),
        ("spend_30d == 0", {"spend_30d": 0.0}, True),
        ("spend_30d != 0", {"spend_30d": 0.0}, False),
        ("spend_30d > .5", {"spend_30d": 0.6}, True),
        ("spend_30d > 1e3", {"spend_30d": 999.0}, False),
        ("device == 'mobile'", {"device": "mobile"}, True),
        ('device == "mobile"', {"device": "tablet"}, False),
        ("device != 'mobile'", {"device": "tablet"}, True),
        ("device in ('mobile', 'tablet')", {"device": "tablet"}, True),
        ("device in ('mobile', 'tablet',)", {"device": "desktop"}, False),
        ("device not in ('mobile')", {"device": "desktop"}, True),
        ("segment in ('cluster:1', 'cluster:2')", {"segment": "cluster:2"}, True),
        ("x in (1, 2)", {"x": 2.0}, True),
        ("x == true", {"x": 1.0}, True),
        ("x == false", {"x": 1.0}, False),
        ("true", {}, True),
        ("false", {}, False),
        ("not false", {}, True),
        ("not not true", {}, True),
    ],
)
def test_valid_expressions(text: str, values: dict[str, float | str], expected: bool) -> None:
    assert compile_rule(text, NAMES).matches(values) is expected


def test_precedence_not_binds_tighter_than_and_tighter_than_or() -> None:
    # "a or b and c" is "a or (b and c)": true when a alone holds.
    assert matches("x == 1 or x == 2 and x == 3", x=1.0)
    assert not matches("(x == 1 or x == 2) and x == 3", x=1.0)
    # "not a and b" is "(not a) and b".
    assert matches("not x == 1 and device == 'm'", x=2.0, device="m")
    assert not matches("not (x == 2 and device == 'm')", x=2.0, device="m")
    assert matches("not x == 2 and device == 'm' or spend_30d > 5", x=2.0, device="m", spend_30d=9)


def test_type_mismatch_and_missing_values_are_false_not_errors() -> None:
    assert not matches("spend_30d > 1", spend_30d="lots")
    assert not matches("device == 'mobile'", device=3.0)
    assert not matches("spend_30d != 1")  # absent
    assert not matches("device != 'mobile'", device=None)
    assert not matches("x in (1, 'a')", x="1")
    assert matches("x in (1, 'a')", x="a")
    assert not matches("x not in (1)", x=None)


def test_names_and_text_are_kept() -> None:
    rule = compile_rule("spend_30d > 1 and (device == 'a' or views_24h < 2)", NAMES, name="big")
    assert rule.names == {"spend_30d", "device", "views_24h"}
    assert rule.name == "big"
    restored = pickle.loads(pickle.dumps(rule))
    assert restored.matches({"spend_30d": 2.0, "device": "a"})
    assert not restored.matches({"spend_30d": 2.0, "device": "b"})


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("", 0, "a name"),
        ("spend_30d >", 11, "a number"),
        ("spend_30d 5", 10, "a comparison operator"),
        ("spend_30d > 5 and", 17, "a name"),
        ("(spend_30d > 5", 14, "')'"),
        ("spend_30d > 5)", 13, "'and', 'or' or end of rule"),
        ("spend > 5", 0, "a known name"),
        ("device == 'mobile", 10, "a name, number, string or operator"),
        ("device in 'a'", 10, "'(' after 'in'"),
        ("device in ()", 11, "a number"),
        ("device not == 'a'", 11, "'in'"),
        ("spend_30d = 5", 10, "a name, number, string or operator"),
        ("spend_30d > 1e999", 12, "a finite number"),
        ("spend_30d > 5 && x < 1", 14, "a name, number, string or operator"),
        ("5 < spend_30d", 0, "a name"),
    ],
)
def test_invalid_expressions_say_where_and_what(text: str, position: int, expected: str) -> None:
    with pytest.raises(RuleError) as info:
        compile_rule(text, NAMES, name="vip")
    assert info.value.position == position
    assert expected in info.value.expected
    assert str(info.value).startswith(f"rule 'vip': position {position}: expected ")


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "x.__class__",
        "().__class__.__bases__",
        "x == ().__class__.__bases__[0]",
        "lambda: 1",
        "(lambda: 1)()",
        "x.real > 0",
        "len(x) > 0",
        "x[0] == 1",
        "spend_30d > f'{1}'",
        "f'{x}' == 'a'",
        "x == 1 if x else 2",
        "x == [1, 2]",
        "x == {1: 2}",
        "x == 1; import os",
        "x == b'a'",
        "x == 'a' + 'b'",
        "x == 1 + 1",
        'x == "\\x41"',
        "open('/etc/passwd')",
        "x == 1 or exec('1')",
        "x == eval",
        "x == None",
    ],
)
def test_python_is_out_of_reach(text: str) -> None:
    with pytest.raises(RuleError):
        compile_rule(text, NAMES)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    depth = MAX_DEPTH + 1
    with pytest.raises(RuleError, match="levels of nesting"):
        compile_rule("(" * depth + "x > 1" + ")" * depth, NAMES)
    with pytest.raises(RuleError, match="levels of nesting"):
        compile_rule("not " * depth + "x > 1", NAMES)
    with pytest.raises(RuleError):
        compile_rule("(" * 100_000, NAMES)
    ok = compile_rule("(" * MAX_DEPTH + "x > 1" + ")" * MAX_DEPTH, NAMES)
    assert ok.matches({"x": 2.0})


def test_long_rules_are_refused_and_long_flat_chains_work() -> None:
    with pytest.raises(RuleError, match=f"at most {MAX_LENGTH} characters"):
        compile_rule("x > 1 or " * 300 + "x > 1", NAMES)
    chain = " or ".join(f"x == {i}" for i in range(150))
    assert len(chain) < MAX_LENGTH
    rule = compile_rule(chain, NAMES)
    assert rule.matches({"x": 149.0})
    assert not rule.matches({"x": 150.0})


def test_ruleset_matching_is_sorted_and_validates_names() -> None:
    rules = RuleSet(
        {"whale": "spend_30d > 100", "browser": "views_24h > 10", "any_mobile": "device == 'm'"},
        NAMES,
    )
    assert len(rules) == 3
    values: dict[str, float | str | None] = {"spend_30d": 500.0, "views_24h": 20.0, "device": "m"}
    assert rules.matching(values) == ("any_mobile", "browser", "whale")
    assert rules.matching({"spend_30d": 500.0}) == ("whale",)
    assert rules.matching({}) == ()
    with pytest.raises(RuleError, match="rule 'Bad-Name'"):
        RuleSet({"Bad-Name": "x > 1"}, NAMES)
    with pytest.raises(RuleError, match="rule 'typo': position 0: expected a known name"):
        RuleSet({"ok": "x > 1", "typo": "spnd > 1"}, NAMES)


ALPHABET = st.sampled_from(
    [
        *"abcdefxyz_0123456789.-+*/()[]{},;:'\"<>=!@#$%^&|\\ \t\n",
        *["spend_30d", "device", " and ", " or ", " not ", " in ", "true", "false", "__", "lambda"],
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_random_text_only_ever_raises_rule_error(text: str) -> None:
    try:
        rule = compile_rule(text, NAMES)
    except RuleError:
        return
    assert isinstance(rule.matches({"spend_30d": 1.0, "device": "m", "x": "s"}), bool)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_unicode_only_ever_raises_rule_error(text: str) -> None:
    with contextlib.suppress(RuleError):
        compile_rule(text, NAMES)
