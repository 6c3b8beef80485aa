"""The CRDs' CEL admission rules (``x-kubernetes-validations``), evaluated offline.

``modelsync validate`` reports what the apiserver would refuse, with the field and message the
apiserver names: the rules are read from the same schemas the CRDs are generated from
(:func:`modelsync.crdgen.schema_of`), so a rule added to :mod:`modelsync.api` is checked here too.

This is the subset of CEL (and of Kubernetes' CEL libraries) the rules use: literals, ``self``,
field selection, ``has()``, ``! && || ?:``, comparisons, arithmetic, ``in``, the macros ``all``,
``exists``, ``exists_one``, ``size``, ``string``, ``bytes``, ``matches``, ``duration`` and the
quantity library (``quantity``, ``isQuantity``, ``isGreaterThan``, ``isLessThan``, ``compareTo``,
``isInteger``, ``asInteger``). A rule using anything else raises :class:`Unsupported` when it is
parsed (a unit test parses every rule of every CRD); transition rules (``oldSelf``) need the stored
object and are left to the apiserver.
"""
from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from typing import Any, Callable, Iterator, Mapping

from kubernetes.utils import parse_quantity


class Unsupported(Exception):
    """The rule uses CEL this module does not evaluate."""


class EvalError(Exception):
    """The rule could not be evaluated on this value (a type the schema refuses anyway)."""


class ValueFailure(EvalError):
    """A library function refused the value (an invalid quantity or duration): the apiserver
    refuses the object then, naming the rule's field, with this text before the rule's message."""


# ---------------------------------------------------------------- values


@dataclasses.dataclass(frozen=True)
class Quantity:
    value: Decimal


@dataclasses.dataclass(frozen=True)
class Duration:
    seconds: Decimal


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": Decimal("1e-9"), "us": Decimal("1e-6"), "µs": Decimal("1e-6"), "ms": Decimal("0.001"), "s": Decimal(1),
          "m": Decimal(60), "h": Decimal(3600)}


def _duration(text: str) -> Duration:
    sign, rest = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    if rest == "0":
        return Duration(Decimal(0))
    pos, total = 0, Decimal(0)
    for m in _DURATION_PART.finditer(rest):
        if m.start() != pos:
            break
        total += Decimal(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(rest) or not rest:
        raise ValueFailure(f'time: invalid duration "{text}"')
    return Duration(sign * total)


def _quantity(text: Any) -> Quantity:
    if not isinstance(text, str):
        raise EvalError("quantity() takes a string")
    if not _QUANTITY.match(text):
        raise ValueFailure(f"quantities must match the regular expression '{_QUANTITY.pattern}'")
    try:
        return Quantity(Decimal(parse_quantity(text)))
    except (ValueError, ArithmeticError):
        raise ValueFailure(f"quantities must match the regular expression '{_QUANTITY.pattern}'") from None


INT64 = (-(2**63), 2**63 - 1)
#: what Kubernetes' quantity library says a quantity must match (its error names this expression)
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")


def _q_is_integer(q: Quantity) -> bool:
    return q.value == q.value.to_integral_value() and INT64[0] <= q.value <= INT64[1]


def _string(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    raise EvalError(f"string() of {type(v).__name__}")


def _size(v: Any) -> int:
    if isinstance(v, (str, bytes, list, dict)):
        return len(v)
    raise EvalError(f"size() of {type(v).__name__}")


def _cmp(a: Any, b: Any) -> int:
    if isinstance(a, Quantity) and isinstance(b, Quantity):
        a, b = a.value, b.value
    elif isinstance(a, Duration) and isinstance(b, Duration):
        a, b = a.seconds, b.seconds
    elif not (type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                     and not isinstance(a, bool) and not isinstance(b, bool))):
        raise EvalError(f"cannot compare {type(a).__name__} with {type(b).__name__}")
    return int((a > b) - (a < b))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "size": _size,
    "string": _string,
    "bytes": lambda v: v.encode("utf-8") if isinstance(v, str) else (_ for _ in ()).throw(EvalError("bytes()")),
    "duration": lambda v: _duration(v) if isinstance(v, str) else (_ for _ in ()).throw(EvalError("duration()")),
    "quantity": _quantity,
    "isQuantity": lambda v: _is_quantity(v),
    "int": lambda v: int(v),
}


def _is_quantity(v: Any) -> bool:
    try:
        _quantity(v)
        return True
    except EvalError:
        return False


def _matches(s: Any, pattern: Any) -> bool:
    if not isinstance(s, str) or not isinstance(pattern, str):
        raise EvalError("matches() takes strings")
    return re.search(pattern, s) is not None


METHODS: dict[str, Callable[..., Any]] = {
    "size": _size,
    "matches": _matches,
    "startsWith": lambda s, p: s.startswith(p),
    "endsWith": lambda s, p: s.endswith(p),
    "contains": lambda s, p: p in s,
    "isGreaterThan": lambda a, b: _cmp(a, b) > 0,
    "isLessThan": lambda a, b: _cmp(a, b) < 0,
    "compareTo": _cmp,
    "isInteger": lambda q: _q_is_integer(q),
    "asInteger": lambda q: int(q.value) if _q_is_integer(q) else (_ for _ in ()).throw(EvalError("not an int64")),
}
MACROS = ("all", "exists", "exists_one")


# ---------------------------------------------------------------- parsing

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>\d+\.\d+|\d+)
  | (?P<str>[rR]?'(?:[^'\\]|\\.)*'|[rR]?"(?:[^"\\]|\\.)*")
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/%!<>?:().,\[\]])
)""", re.X)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot read {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    out.append(("end", ""))
    return out


def _unquote(tok: str) -> str:
    raw = tok[0] in "rR"
    body = tok[2:-1] if raw else tok[1:-1]
    if raw:
        return body
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), body)


Node = tuple[Any, ...]  # ("lit", v) ("id", name) ("sel", node, field) ("has", node, field) ("call", name, args)
#              ("meth", node, name, args) ("macro", node, name, var, body) ("un", op, node) ("bin", op, a, b)
#              ("cond", c, a, b) ("idx", node, key) ("list", items)

_BINARY = [("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%")]


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i]

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.toks[self.i]
        if value is not None and tok[1] != value:
            raise Unsupported(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.peek()[0] != "end":
            raise Unsupported(f"unexpected {self.peek()[1]!r}")
        return node

    def expr(self) -> Node:
        cond = self.binary(0)
        if self.peek()[1] == "?":
            self.take("?")
            a = self.expr()
            self.take(":")
            b = self.expr()
            return ("cond", cond, a, b)
        return cond

    def binary(self, level: int) -> Node:
        if level == len(_BINARY):
            return self.unary()
        node = self.binary(level + 1)
        while self.peek()[1] in _BINARY[level] and self.peek()[0] in ("op", "id"):
            op = self.take()[1]
            node = ("bin", op, node, self.binary(level + 1))
        return node

    def unary(self) -> Node:
        if self.peek()[1] in ("!", "-") and self.peek()[0] == "op":
            op = self.take()[1]
            return ("un", op, self.unary())
        return self.postfix(self.primary())

    def args(self) -> list[Node]:
        self.take("(")
        out = []
        while self.peek()[1] != ")":
            out.append(self.expr())
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return out

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "num":
            return ("lit", Decimal(value) if "." in value else int(value))
        if kind == "str":
            return ("lit", _unquote(value))
        if kind == "op" and value == "(":
            node = self.expr()
            self.take(")")
            return node
        if kind == "op" and value == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.expr())
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("]")
            return ("list", items)
        if kind == "id":
            if value in ("true", "false"):
                return ("lit", value == "true")
            if value == "null":
                return ("lit", None)
            if self.peek()[1] == "(":
                if value == "has":
                    self.take("(")
                    arg = self.postfix(self.primary())
                    self.take(")")
                    if arg[0] != "sel":
                        raise Unsupported("has() takes a field selection")
                    return ("has", arg[1], arg[2])
                if value not in FUNCTIONS:
                    raise Unsupported(f"function {value}()")
                return ("call", value, self.args())
            if value == "oldSelf":
                raise Unsupported("a transition rule (oldSelf) needs the stored object")
            return ("id", value)
        raise Unsupported(f"unexpected {value!r}")

    def postfix(self, node: Node) -> Node:
        while True:
            tok = self.peek()
            if tok[1] == "." and tok[0] == "op":
                self.take(".")
                name = self.take()[1]
                if self.peek()[1] == "(":
                    if name in MACROS:
                        self.take("(")
                        var = self.take()[1]
                        self.take(",")
                        body = self.expr()
                        self.take(")")
                        node = ("macro", node, name, var, body)
                    elif name in METHODS:
                        node = ("meth", node, name, self.args())
                    else:
                        raise Unsupported(f"method .{name}()")
                else:
                    node = ("sel", node, name)
            elif tok[1] == "[" and tok[0] == "op":
                self.take("[")
                key = self.expr()
                self.take("]")
                node = ("idx", node, key)
            else:
                return node


_CACHE: dict[str, Node] = {}


def compile_rule(rule: str) -> Node:
    """The rule's syntax tree; :class:`Unsupported` if it uses CEL this module does not evaluate."""
    node = _CACHE.get(rule)
    if node is None:
        node = _CACHE[rule] = _Parser(rule).parse()
    return node


# ---------------------------------------------------------------- evaluation


def evaluate(node: Node, env: Mapping[str, Any]) -> Any:
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "id":
        if node[1] not in env:
            raise EvalError(f"unknown name {node[1]}")
        return env[node[1]]
    if op == "list":
        return [evaluate(n, env) for n in node[1]]
    if op == "sel":
        obj = evaluate(node[1], env)
        if not isinstance(obj, Mapping) or node[2] not in obj:
            raise EvalError(f"no such key: {node[2]}")
        return obj[node[2]]
    if op == "has":
        obj = evaluate(node[1], env)
        if not isinstance(obj, Mapping):
            raise EvalError("has() on a non-object")
        return node[2] in obj and obj[node[2]] is not None
    if op == "idx":
        obj, key = evaluate(node[1], env), evaluate(node[2], env)
        try:
            return obj[key]
        except (KeyError, IndexError, TypeError):
            raise EvalError("no such index") from None
    if op == "un":
        v = evaluate(node[2], env)
        if node[1] == "!":
            if not isinstance(v, bool):
                raise EvalError("! of a non-bool")
            return not v
        return -v
    if op == "cond":
        c = evaluate(node[1], env)
        if not isinstance(c, bool):
            raise EvalError("?: on a non-bool")
        return evaluate(node[2] if c else node[3], env)
    if op == "bin":
        return _binary(node[1], node[2], node[3], env)
    if op == "call":
        args = [evaluate(a, env) for a in node[2]]
        try:
            return FUNCTIONS[node[1]](*args)
        except EvalError:
            raise
        except Exception as exc:  # a wrong type: the schema check reports it
            raise EvalError(str(exc)) from None
    if op == "meth":
        target = evaluate(node[1], env)
        args = [evaluate(a, env) for a in node[3]]
        if node[2] in ("isGreaterThan", "isLessThan", "compareTo", "isInteger", "asInteger") and not isinstance(
                target, Quantity):
            raise EvalError(f".{node[2]}() of a non-quantity")
        try:
            return METHODS[node[2]](target, *args)
        except EvalError:
            raise
        except Exception as exc:
            raise EvalError(str(exc)) from None
    if op == "macro":
        target, name, var, body = evaluate(node[1], env), node[2], node[3], node[4]
        items = list(target.keys()) if isinstance(target, Mapping) else target
        if not isinstance(items, list):
            raise EvalError(f".{name}() of a non-list")
        results = []
        for item in items:
            r = evaluate(body, {**env, var: item})
            if not isinstance(r, bool):
                raise EvalError(f".{name}() body is not a bool")
            results.append(r)
        return all(results) if name == "all" else any(results) if name == "exists" else results.count(True) == 1
    raise Unsupported(op)


def _binary(op: str, a_node: Node, b_node: Node, env: Mapping[str, Any]) -> Any:
    if op in ("&&", "||"):
        # CEL's commutative logic: an error on one side is absorbed when the other decides
        try:
            a: Any = evaluate(a_node, env)
        except EvalError as exc:
            a = exc
        if op == "||" and a is True or op == "&&" and a is False:
            return a
        b = evaluate(b_node, env)
        if op == "||" and b is True or op == "&&" and b is False:
            return b
        if isinstance(a, EvalError):
            raise a
        if not isinstance(a, bool) or not isinstance(b, bool):
            raise EvalError(f"{op} of non-bools")
        return a and b if op == "&&" else a or b
    a, b = evaluate(a_node, env), evaluate(b_node, env)
    if op == "==":
        return a == b and type(a) is type(b) or (isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal))
                                                 and a == b)
    if op == "!=":
        return not (a == b and type(a) is type(b))
    if op == "in":
        return a in b
    if op in ("<", "<=", ">", ">="):
        c = _cmp(a, b)
        return {"<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0}[op]
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a // b if isinstance(a, int) and isinstance(b, int) else a / b
        if op == "%":
            return a % b
    except (TypeError, ZeroDivisionError) as exc:
        raise EvalError(str(exc)) from None
    raise Unsupported(op)


# ---------------------------------------------------------------- schemas


@dataclasses.dataclass(frozen=True)
class Violation:
    field: str
    message: str
    reason: str | None = None


def _join(path: str, field_path: str) -> str:
    return path + field_path if field_path.startswith(("[", ".")) else f"{path}.{field_path}"


def rules_in(schema: Mapping[str, Any]) -> Iterator[str]:
    """Every rule in a schema, nested ones included."""
    for v in schema.get("x-kubernetes-validations") or []:
        yield v["rule"]
    for sub in (schema.get("properties") or {}).values():
        yield from rules_in(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), Mapping):
            yield from rules_in(schema[key])


def with_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """``value`` with the schema's defaults filled in, as the apiserver does before it validates."""
    if isinstance(value, Mapping):
        out = dict(value)
        for name, sub in (schema.get("properties") or {}).items():
            if name not in out and "default" in sub:
                out[name] = sub["default"]
            if name in out:
                out[name] = with_defaults(sub, out[name])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [with_defaults(schema["items"], v) for v in value]
    return value


def check(schema: Mapping[str, Any], value: Any, path: str) -> list[Violation]:
    """The rules of ``schema`` that ``value`` (at ``path``, e.g. ``spec``) breaks, as the apiserver
    names them: the schema node's path (plus the rule's fieldPath) and the rule's message."""
    out: list[Violation] = []
    if value is None:
        return out
    props = schema.get("properties") or {}
    if isinstance(value, Mapping):
        for name, sub in props.items():
            if name in value:
                out += check(sub, value[name], f"{path}.{name}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for name, v in value.items():
                if name not in props:
                    out += check(extra, v, f"{path}[{name}]")
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            out += check(schema["items"], item, f"{path}[{i}]")
    for v in schema.get("x-kubernetes-validations") or []:
        try:
            node = compile_rule(v["rule"])
        except Unsupported:
            continue  # a transition rule: the apiserver's alone
        field = _join(path, v["fieldPath"]) if v.get("fieldPath") else path
        message = v.get("message") or f"failed rule: {v['rule']}"
        try:
            ok = evaluate(node, {"self": value})
        except ValueFailure as exc:  # the apiserver evaluates, fails, and says so
            out.append(Violation(path, f"{exc} evaluating rule: {message}"))
            continue
        except EvalError:
            continue  # the value has a type the schema refuses: reported as that
        if ok is not True:
            out.append(Violation(field, message, v.get("reason")))
    return out


__all__ = ["check", "with_defaults", "compile_rule", "evaluate", "rules_in", "Violation", "Unsupported", "EvalError"]
