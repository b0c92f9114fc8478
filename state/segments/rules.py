"""Declarative rule segments: small boolean expressions over a user's features.

Rules come from configuration, so they are parsed by a hand-written tokenizer and
recursive-descent parser into a tiny tree of frozen nodes, never handed to `eval`: a rule
can only compare named values with literals, so no config text can reach Python itself.
Unknown names fail at compile time, which turns a typo in the config into a start-up error
instead of a segment that silently never matches.

Grammar (lowest precedence first)::

    rule       := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | atom
    atom       := "(" or_expr ")" | "true" | "false" | comparison
    comparison := NAME CMP literal | NAME ["not"] "in" "(" literal ("," literal)* [","] ")"
    literal    := NUMBER | STRING | "true" | "false"      (true/false compare as 1/0)

>>> rule = compile_rule("spend_30d >= 100 and device in ('mobile', 'tablet')",
...                     {"spend_30d", "device"})
>>> rule.matches({"spend_30d": 150.0, "device": "mobile"})
True
>>> rule.matches({"spend_30d": "lots", "device": "mobile"})
False
>>> try:
...     compile_rule("spend > 1", {"spend_30d"})
... except RuleError as error:
...     print(error)
rule '<rule>': position 0: expected a known name, found 'spend'
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "Rule", "RuleError", "RuleSet", "compile_rule"]

#: Longest rule text accepted: rules are config, not programs.
MAX_LENGTH = 2000
#: Deepest nesting of parentheses and `not`: bounds the parser's and evaluator's recursion.
MAX_DEPTH = 32

Value = float | str | None
Literal = float | str

_NAME_RE = re.compile(r"[a-z_][a-z0-9_]*")
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'[^'\\\n]*'|"[^"\\\n]*")
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})


class RuleError(ValueError):
    """A rule that cannot be compiled: says which rule, where, and what was expected."""

    def __init__(self, rule: str, position: int, expected: str, found: str) -> None:
        super().__init__(f"rule {rule!r}: position {position}: expected {expected}, found {found}")
        self.rule = rule
        self.position = position
        self.expected = expected
        self.found = found


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, string, name, keyword, op, punct, end
    text: str
    pos: int


def _tokenize(text: str, rule: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise RuleError(rule, pos, "a name, number, string or operator", repr(text[pos]))
        kind = match.lastgroup or ""
        if kind != "ws":
            word = match.group()
            if kind == "name" and word in _KEYWORDS:
                kind = "keyword"
            tokens.append(_Token(kind, word, pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


# ---- the tree: frozen nodes with one `evaluate` each -------------------------------------------


def _same_kind(a: object, b: Literal) -> bool:
    """Only number-number and string-string compare; anything else is simply not a match."""
    if isinstance(b, str):
        return isinstance(a, str)
    return isinstance(a, int | float)


@dataclass(frozen=True, slots=True)
class _Compare:
    name: str
    op: str
    value: Literal

    def evaluate(self, values: Mapping[str, Value]) -> bool:
        actual = values.get(self.name)
        if actual is None or not _same_kind(actual, self.value):
            return False
        a, b = actual, self.value
        if self.op == "==":
            return a == b
        if self.op == "!=":
            return a != b
        if self.op == "<":
            return a < b  # type: ignore[operator]
        if self.op == "<=":
            return a <= b  # type: ignore[operator]
        if self.op == ">":
            return a > b  # type: ignore[operator]
        return a >= b  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class _In:
    name: str
    options: tuple[Literal, ...]
    negate: bool

    def evaluate(self, values: Mapping[str, Value]) -> bool:
        actual = values.get(self.name)
        if actual is None:
            return False
        found = any(_same_kind(actual, o) and actual == o for o in self.options)
        return found != self.negate


@dataclass(frozen=True, slots=True)
class _Not:
    child: _Node

    def evaluate(self, values: Mapping[str, Value]) -> bool:
        return not self.child.evaluate(values)


@dataclass(frozen=True, slots=True)
class _BoolOp:
    op: str  # "and" | "or"
    children: tuple[_Node, ...]

    def evaluate(self, values: Mapping[str, Value]) -> bool:
        if self.op == "and":
            return all(c.evaluate(values) for c in self.children)
        return any(c.evaluate(values) for c in self.children)


@dataclass(frozen=True, slots=True)
class _Const:
    value: bool

    def evaluate(self, values: Mapping[str, Value]) -> bool:
        return self.value


_Node = _Compare | _In | _Not | _BoolOp | _Const


# ---- the parser ----------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[_Token], known: Collection[str], rule: str) -> None:
        self.tokens = tokens
        self.i = 0
        self.known = known
        self.rule = rule
        self.depth = 0
        self.names: set[str] = set()

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def fail(self, expected: str) -> RuleError:
        found = "end of rule" if self.tok.kind == "end" else repr(self.tok.text)
        return RuleError(self.rule, self.tok.pos, expected, found)

    def accept(self, kind: str, text: str | None = None) -> _Token | None:
        tok = self.tok
        if tok.kind == kind and (text is None or tok.text == text):
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, text: str, expected: str) -> None:
        if self.accept(kind, text) is None:
            raise self.fail(expected)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"at most {MAX_DEPTH} levels of nesting")

    def rule_expr(self) -> _Node:
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.fail("'and', 'or' or end of rule")
        return node

    def or_expr(self) -> _Node:
        children = [self.and_expr()]
        while self.accept("keyword", "or"):
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else _BoolOp("or", tuple(children))

    def and_expr(self) -> _Node:
        children = [self.not_expr()]
        while self.accept("keyword", "and"):
            children.append(self.not_expr())
        return children[0] if len(children) == 1 else _BoolOp("and", tuple(children))

    def not_expr(self) -> _Node:
        if self.accept("keyword", "not"):
            self.enter()
            node: _Node = _Not(self.not_expr())
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> _Node:
        if self.accept("punct", "("):
            self.enter()
            node = self.or_expr()
            self.expect("punct", ")", "')'")
            self.depth -= 1
            return node
        for word, value in (("true", True), ("false", False)):
            if self.accept("keyword", word):
                return _Const(value)
        return self.comparison()

    def comparison(self) -> _Node:
        tok = self.tok
        if tok.kind != "name":
            raise self.fail("a name, 'not', 'true', 'false' or '('")
        if tok.text not in self.known:
            raise self.fail("a known name")
        self.i += 1
        self.names.add(tok.text)
        op = self.accept("op")
        if op is not None:
            return _Compare(tok.text, op.text, self.literal())
        negate = self.accept("keyword", "not") is not None
        if self.accept("keyword", "in") is None:
            raise self.fail("'in'" if negate else "a comparison operator or 'in'")
        return _In(tok.text, self.options(), negate)

    def options(self) -> tuple[Literal, ...]:
        self.expect("punct", "(", "'(' after 'in'")
        options = [self.literal()]
        while self.accept("punct", ","):
            if self.tok.kind == "punct" and self.tok.text == ")":
                break
            options.append(self.literal())
        self.expect("punct", ")", "',' or ')'")
        return tuple(options)

    def literal(self) -> Literal:
        tok = self.tok
        if tok.kind == "number":
            value = float(tok.text)
            if not math.isfinite(value):
                raise self.fail("a finite number")
            self.i += 1
            return value
        if tok.kind == "string":
            self.i += 1
            return tok.text[1:-1]
        if tok.kind == "keyword" and tok.text in ("true", "false"):
            self.i += 1
            return 1.0 if tok.text == "true" else 0.0
        raise self.fail("a number, a quoted string, 'true' or 'false'")


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule: `matches` walks the tree; it never raises on odd values."""

    name: str
    text: str
    names: frozenset[str]
    _root: _Node

    def matches(self, values: Mapping[str, Value]) -> bool:
        """True when the rule holds; a missing value or a type mismatch is just False."""
        return self._root.evaluate(values)


def compile_rule(text: str, known_names: Collection[str], *, name: str = "<rule>") -> Rule:
    """Parse `text` into a `Rule`, or raise `RuleError` naming rule, position and expectation."""
    if not isinstance(text, str):
        raise RuleError(name, 0, "rule text as a string", type(text).__name__)
    if len(text) > MAX_LENGTH:
        raise RuleError(name, MAX_LENGTH, f"at most {MAX_LENGTH} characters", f"{len(text)}")
    parser = _Parser(_tokenize(text, name), frozenset(known_names), name)
    root = parser.rule_expr()
    return Rule(name, text, frozenset(parser.names), root)


class RuleSet:
    """Named rules compiled once; `matching` lists which hold for one user, sorted."""

    def __init__(self, rules: Mapping[str, str], known_names: Collection[str]) -> None:
        self.rules = dict(rules)
        self.known_names = frozenset(known_names)
        compiled = []
        for rule_name in sorted(self.rules):
            if not isinstance(rule_name, str) or not _NAME_RE.fullmatch(rule_name):
                raise RuleError(
                    str(rule_name), 0, "a rule name matching [a-z_][a-z0-9_]*", repr(rule_name)
                )
            compiled.append(compile_rule(self.rules[rule_name], self.known_names, name=rule_name))
        self._compiled = tuple(compiled)

    def matching(self, values: Mapping[str, Value]) -> tuple[str, ...]:
        """Names of the rules that hold, in sorted order (compiled sorted, so no sort here)."""
        return tuple(rule.name for rule in self._compiled if rule.matches(values))

    def __len__(self) -> int:
        return len(self._compiled)
