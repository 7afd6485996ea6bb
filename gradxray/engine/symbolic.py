"""Symbolic sizes: an ``int`` that remembers which input dims it was computed from.

``SymInt(8, "B") * SymInt(256, "T")`` is the int 2048 that displays as ``B*T``.
It *is* an int (subclass), so every shape computation in the engine works on it
unchanged and byte counts use the concrete value; only display is symbolic.

The expression is kept as a polynomial with rational coefficients
(``{(("B",1),("T",1)): 1}``), which is enough for what model code does with
sizes: products, sums, division by a constant or by a factor that divides
exactly (``B*T*V // V == B*T``).  Anything else (``%``, inexact floor division
by a symbol) falls back to a plain int.
"""
from __future__ import annotations

import functools
from fractions import Fraction

from .memo import remember

Monomial = tuple  # tuple of (symbol, power) pairs, sorted
Poly = dict       # Monomial -> coefficient: an int, or a Fraction when not integral

# Coefficients stay plain ints while integral: model code almost never divides inexactly, and int
# arithmetic is far cheaper than Fraction's.  Both compare, hash and print alike, so a polynomial
# means the same whichever it holds (old pickles with Fraction(n) coefficients included).


def _coef(c):
    """A coefficient in canonical form: an integral Fraction becomes its int."""
    if type(c) is Fraction and c.denominator == 1:
        return c.numerator
    return c


@functools.lru_cache(maxsize=4096)
def _mono_mul(a: Monomial, b: Monomial) -> Monomial:
    # pure, and the same few monomials (B, B*T, ...) are multiplied over and over
    if not a:
        return b
    if not b:
        return a
    powers: dict[str, int] = dict(a)
    for sym, p in b:
        powers[sym] = powers.get(sym, 0) + p
    return tuple(sorted((s, p) for s, p in powers.items() if p != 0))


def _poly_of(x) -> Poly:
    if isinstance(x, SymInt):
        return x._poly
    return {(): int(x)}


def _poly_add(a: Poly, b: Poly, sign: int = 1) -> Poly:
    out = dict(a)
    for m, c in b.items():
        total = _coef(out.get(m, 0) + sign * c)
        if total == 0:
            out.pop(m, None)
        else:
            out[m] = total
    return out


def _poly_mul(a: Poly, b: Poly) -> Poly:
    out: Poly = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            m = _mono_mul(ma, mb)
            total = _coef(out.get(m, 0) + ca * cb)
            if total == 0:
                out.pop(m, None)
            else:
                out[m] = total
    return out


def _poly_div(a: Poly, b: Poly) -> Poly | None:
    """Exact division by a single-term divisor, else None."""
    if len(b) != 1:
        return None
    (mb, cb), = b.items()
    inv = tuple((s, -p) for s, p in mb)
    out: Poly = {}
    for ma, ca in a.items():
        m = _mono_mul(ma, inv)
        if any(p < 0 for _, p in m):
            return None
        # an exact int quotient needs no Fraction (the common case: B*T*V // V)
        out[m] = ca // cb if type(ca) is int and type(cb) is int and ca % cb == 0 else _coef(Fraction(ca, cb))
    return out


def _is_symbolic(poly: Poly) -> bool:
    # some monomial other than the constant () is present
    return len(poly) > 1 or (len(poly) == 1 and () not in poly)


def _mono_text(m: Monomial) -> str:
    return "*".join(s if p == 1 else f"{s}**{p}" for s, p in m)


def _poly_text(poly: Poly) -> str:
    terms = []
    # symbolic terms first, highest degree first, then the constant
    for m in sorted(poly, key=lambda m: (-sum(p for _, p in m), m)):
        c = poly[m]
        if m == ():
            terms.append((c, str(c.numerator) if c.denominator == 1 else f"{c.numerator}/{c.denominator}"))
            continue
        body = _mono_text(m)
        mag = abs(c)
        if mag == 1:
            text = body
        elif mag.denominator == 1:
            text = f"{mag.numerator}*{body}"
        elif mag.numerator == 1:
            text = f"{body}/{mag.denominator}"
        else:
            text = f"{mag.numerator}*{body}/{mag.denominator}"
        terms.append((c, text if c > 0 else "-" + text))
    if not terms:
        return "0"
    out = terms[0][1] if terms[0][0] >= 0 or terms[0][1].startswith("-") else "-" + terms[0][1]
    for c, text in terms[1:]:
        if text.startswith("-"):
            out += " - " + text[1:]
        else:
            out += " + " + text
    return out


# SymInt products and sums by operands (see SymInt.__mul__) and display texts by expression (every
# tensor a traced line shows is rendered), see memo.remember
_products: dict = {}
_sums: dict = {}
_others: dict = {}          # differences and floor quotients, by (operator, operands)
_texts: dict = {}


class SymInt(int):
    """An int whose display is an expression over named input dims."""

    _poly: Poly

    def __new__(cls, value: int, name: str | None = None, *, _poly: Poly | None = None):
        obj = super().__new__(cls, int(value))
        obj._poly = _poly if _poly is not None else ({((name, 1),): 1} if name else {(): int(value)})
        obj._key = None
        return obj

    def _cache_key(self):
        """(value, terms): what an arithmetic result depends on, hashable (computed once)."""
        key = self._key
        if key is None:
            key = self._key = (int(self), frozenset(self._poly.items()))
        return key

    @staticmethod
    def _make(value: int, poly: Poly | None):
        # _is_symbolic inlined: this runs for every arithmetic result
        if poly is None or not (len(poly) > 1 or (len(poly) == 1 and () not in poly)):
            return int(value)
        return SymInt(value, _poly=poly)

    @property
    def expr(self) -> str:
        terms = (self._key or self._cache_key())[1]
        text = _texts.get(terms)
        if text is None:
            text = remember(_texts, terms, _poly_text(self._poly))
        return text

    def __repr__(self) -> str:
        return self.expr

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return int(self).__format__(spec) if spec else self.expr

    def __reduce__(self):
        return (SymInt, (int(self),), {"_poly": self._poly})

    def __setstate__(self, state):
        self._poly = state["_poly"]
        self._key = None

    # arithmetic keeps the expression ------------------------------------
    def _pair_key(self, other):
        """What arithmetic with ``other`` depends on, hashable; None when ``other`` is not an int (or
        is a bool), which plain int arithmetic handles.  The operand's exact type decides first: an int
        or a SymInt nearly always."""
        kind = type(other)
        if kind is int:
            return (self._key or self._cache_key(), other)
        if kind is SymInt:
            return (self._key or self._cache_key(), other._key or other._cache_key())
        if not isinstance(other, int) or isinstance(other, bool):
            return None
        return (self._key or self._cache_key(), int(other))

    def __add__(self, other):
        key = self._pair_key(other)
        if key is None:
            return int(self) + other
        out = _sums.get(key)             # as for products (see __mul__)
        if out is None:
            out = remember(_sums, key, SymInt._make(int(self) + int(other), _poly_add(self._poly, _poly_of(other))))
        return out

    __radd__ = __add__

    def _remembered(self, op: str, key: tuple, compute, other):
        """``compute(self, other)``, once per operation and operands (differences and quotients: every
        convolution's and pooling's output size is one of each)."""
        key = (op, *key)
        out = _others.get(key)
        if out is None:
            out = remember(_others, key, compute(self, other))
        return out

    def __sub__(self, other):
        key = self._pair_key(other)
        if key is None:
            return int(self) - other
        return self._remembered("-", key, SymInt._subtract, other)

    def _subtract(self, other):
        return SymInt._make(int(self) - int(other), _poly_add(self._poly, _poly_of(other), -1))

    def __rsub__(self, other):
        key = self._pair_key(other)
        if key is None:
            return other - int(self)
        return self._remembered("r-", key, SymInt._subtract_from, other)

    def _subtract_from(self, other):
        return SymInt._make(int(other) - int(self), _poly_add(_poly_of(other), self._poly, -1))

    def __mul__(self, other):
        # a shape's sizes are multiplied over and over (numel, strides, FLOPs): the product of the same
        # two values is the same value, so it is computed once
        key = self._pair_key(other)
        if key is None:
            return int(self) * other
        out = _products.get(key)
        if out is None:
            out = remember(_products, key, self._multiply(other))
        return out

    __rmul__ = __mul__

    def _multiply(self, other):
        if not isinstance(other, SymInt):          # the common case: scale by a constant (fast path)
            if other == 1:
                return self
            if other == 0:
                return 0
            other = int(other)
            return SymInt._make(int(self) * other, {m: _coef(c * other) for m, c in self._poly.items()})
        return SymInt._make(int(self) * int(other), _poly_mul(self._poly, other._poly))

    def __floordiv__(self, other):
        key = self._pair_key(other)
        if key is None:
            return int(self) // other
        return self._remembered("//", key, SymInt._floor_divide, other)

    def _floor_divide(self, other):
        value = int(self) // int(other)
        if int(other) == 0:
            return value
        if int(self) % int(other) == 0:
            return SymInt._make(value, _poly_div(self._poly, _poly_of(other)))
        if not isinstance(other, SymInt):
            # floor((a - r) / s) with the concrete remainder r: exact for the bound values
            rem = int(self) % int(other)
            return SymInt._make(value, _poly_div(_poly_add(self._poly, {(): rem}, -1), _poly_of(other)))
        return value

    def __rfloordiv__(self, other):
        key = self._pair_key(other)
        if key is None:
            return other // int(self)
        return self._remembered("r//", key, SymInt._floor_divide_into, other)

    def _floor_divide_into(self, other):
        value = int(other) // int(self)
        if int(other) % int(self) == 0:
            return SymInt._make(value, _poly_div(_poly_of(other), self._poly))
        return value

    def __neg__(self):
        return SymInt._make(-int(self), {m: -c for m, c in self._poly.items()})

    def __pos__(self):
        return self

    def __abs__(self):
        return self if int(self) >= 0 else -self

    # int(), index() and hash() are int's own C slots, inherited: they give the plain value, and a Python
    # override would put a function call under every int(size) in the engine


def sym_text(x) -> str:
    """Display text of a size: the expression for a SymInt, the number otherwise."""
    return x.expr if isinstance(x, SymInt) else str(int(x))


def sym_prod(xs) -> int:
    """The product, symbolic when a factor is (plain ints are multiplied first: cheaper)."""
    plain, symbolic = 1, []
    for x in xs:
        if type(x) is SymInt:
            symbolic.append(x)
        else:
            plain *= x
    out = plain
    for x in symbolic:
        out = x * out
    return out


def concrete_prod(xs) -> int:
    """The product as a plain int (byte counts need no expression)."""
    out = 1
    for x in xs:
        out *= int(x)
    return out
