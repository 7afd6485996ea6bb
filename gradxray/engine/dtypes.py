"""dtypes with torch's names, sizes and promotion lattice."""
from __future__ import annotations


class dtype:
    __slots__ = ("name", "itemsize", "is_floating_point", "is_complex", "is_signed", "_rank", "short")

    def __init__(self, name, itemsize, is_floating_point, rank, short, is_signed=True):
        self.name = name
        self.itemsize = itemsize
        self.is_floating_point = is_floating_point
        self.is_complex = False
        self.is_signed = is_signed
        self._rank = rank          # position in the promotion order within its category
        self.short = short         # "f32" — used by editor hints

    def __repr__(self):
        return f"gx.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


bool_ = dtype("bool", 1, False, 0, "b8", is_signed=False)
uint8 = dtype("uint8", 1, False, 1, "u8", is_signed=False)
int8 = dtype("int8", 1, False, 2, "i8")
int16 = dtype("int16", 2, False, 3, "i16")
int32 = dtype("int32", 4, False, 4, "i32")
int64 = dtype("int64", 8, False, 5, "i64")
uint64 = dtype("uint64", 8, False, 6, "u64", is_signed=False)     # RNG state of CUDA attention kernels
float16 = dtype("float16", 2, True, 10, "f16")
bfloat16 = dtype("bfloat16", 2, True, 10, "bf16")
float32 = dtype("float32", 4, True, 11, "f32")
float64 = dtype("float64", 8, True, 12, "f64")

ALL = [bool_, uint8, int8, int16, int32, int64, uint64, float16, bfloat16, float32, float64]
_BY_NAME = {d.name: d for d in ALL}
ALIASES = {"long": int64, "int": int32, "short": int16, "half": float16, "float": float32,
           "double": float64, "bool": bool_}


_SCALAR_TYPE_NAMES = {"bool": "Bool", "uint8": "Byte", "int8": "Char", "int16": "Short", "int32": "Int",
                      "int64": "Long", "uint64": "UInt64", "float16": "Half", "bfloat16": "BFloat16",
                      "float32": "Float", "float64": "Double"}


def scalar_type_name(d: dtype) -> str:
    """torch's ScalarType name ("Float", "Long" ...), as its error messages spell dtypes."""
    return _SCALAR_TYPE_NAMES[d.name]


def _by_name(name: str) -> dtype:
    return _BY_NAME[name]


def from_name(name: str) -> dtype:
    """'float32' / 'f32' / 'long' -> dtype; KeyError with the known names otherwise."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name in ALIASES:
        return ALIASES[name]
    for d in ALL:
        if d.short == name:
            return d
    raise KeyError(f"unknown dtype {name!r}; known: {', '.join(sorted(_BY_NAME))}")


def promote_types(a: dtype, b: dtype) -> dtype:
    if a is b:
        return a
    if a.is_floating_point and b.is_floating_point:
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if a._rank > b._rank else b
    if a.is_floating_point:
        return a
    if b.is_floating_point:
        return b
    if a is bool_:
        return b
    if b is bool_:
        return a
    if {a, b} == {uint8, int8}:
        return int16
    return a if a._rank > b._rank else b


# torch's default dtype for Python floats and ints
default_float = float32
default_int = int64


def get_default_dtype() -> dtype:
    """torch.get_default_dtype: the floating dtype of Python floats and creation ops (float32)."""
    return default_float


# (eps, max, smallest normal, resolution) of the floating dtypes, as torch.finfo gives them
_FINFO = {"float16": (2.0 ** -10, 65504.0, 2.0 ** -14, 1e-3),
          "bfloat16": (2.0 ** -7, 3.3895313892515355e38, 2.0 ** -126, 1e-2),
          "float32": (2.0 ** -23, 3.4028234663852886e38, 2.0 ** -126, 1e-6),
          "float64": (2.0 ** -52, 1.7976931348623157e308, 2.0 ** -1022, 1e-15)}


class finfo:
    """torch.finfo(dtype=None): the limits of a floating dtype (the default dtype when None)."""

    def __init__(self, type: dtype | None = None):  # noqa: A002 - torch's argument name
        d = default_float if type is None else type
        if not isinstance(d, dtype) or d.name not in _FINFO:
            raise TypeError("torch.finfo() requires a floating point input type. Use torch.iinfo to handle "
                            "'torch.finfo'")
        self.bits = d.itemsize * 8
        self.eps, self.max, self.smallest_normal, self.resolution = _FINFO[d.name]
        self.min = -self.max
        self.tiny = self.smallest_normal
        self.dtype = d.name

    def __repr__(self):
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:
    """torch.iinfo(dtype): the limits of an integer dtype."""

    def __init__(self, type: dtype):  # noqa: A002 - torch's argument name
        if not isinstance(type, dtype) or type.is_floating_point or type is bool_:
            raise TypeError(f"torch.{getattr(type, 'name', type)} is not supported by torch.iinfo")
        self.bits = type.itemsize * 8
        self.min = -(1 << (self.bits - 1)) if type.is_signed else 0
        self.max = (1 << (self.bits - 1)) - 1 if type.is_signed else (1 << self.bits) - 1
        self.dtype = type.name

    def __repr__(self):
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"


def result_type(*operands) -> dtype:
    """torch.result_type over tensors and Python scalars.

    Operands fall into three categories: dimensioned tensors, zero-dim tensors and Python
    scalars.  Within a category dtypes promote; a lower category only matters when it is of a
    higher kind (bool < integer < floating), e.g. ``int_tensor * 2.5`` is float32."""
    from .tensor import Tensor
    categories: list[dtype | None] = [None, None, None]
    for op in operands:
        if isinstance(op, Tensor):
            slot, d = (0 if op.dim() > 0 else 1), op.dtype
        elif isinstance(op, bool):
            slot, d = 2, bool_
        elif isinstance(op, int):
            slot, d = 2, default_int
        elif isinstance(op, float):
            slot, d = 2, default_float
        else:
            continue
        categories[slot] = d if categories[slot] is None else promote_types(categories[slot], d)
    out = None
    for d in categories:
        if d is not None and (out is None or _kind(d) > _kind(out)):
            out = d
    return out


def _kind(d: dtype) -> int:
    if d is bool_:
        return 0
    return 2 if d.is_floating_point else 1
