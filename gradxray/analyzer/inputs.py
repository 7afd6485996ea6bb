"""Input-shape discovery for a ``forward``.

Precedence: ``Settings.inputs`` (CLI ``--input x=[B,3,224,224]:float32``, ``[tool.gradxray] inputs``)
and a pragma comment on the ``forward`` signature::

    def forward(self, idx, targets=None):  # gradxray: idx=[B, T] int64, targets=[B, T] int64

then shape annotations of the parameters (jaxtyping ``x: Float[Tensor, "batch 3 height width"]``,
``typing.Annotated[Tensor, "[B, T] int64"]``), then an example call in the same file
(``model(torch.randn(2, 3, 32, 32))``), then one in the project's ``tests/`` folder.
Dims that are names are bound from ``Settings.dim_bindings()`` and become
``SymInt(value, name)`` so shapes display symbolically; numbers stay ints.

This module parses and describes; it creates engine tensors only in
``make_input_tensors`` (through the runtime passed in).
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass

from gradxray.engine.symbolic import SymInt

from .project import (
    ModuleIndex, dotted_name, positional_params, pragma_lines, required_params, resolve_dotted,
    signature_end_line,
)
from .results import Diagnostic, Edit, Fix, Span
from .rules.gx901_unknown_input_shape import MESSAGE as GX901_MESSAGE

DTYPE_ALIASES = {
    "float32": "float32", "float": "float32", "f32": "float32", "fp32": "float32",
    "float16": "float16", "half": "float16", "f16": "float16", "fp16": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float64": "float64", "double": "float64", "f64": "float64",
    "int64": "int64", "long": "int64", "i64": "int64",
    "int32": "int32", "int": "int32", "i32": "int32",
    "int16": "int16", "short": "int16",
    "int8": "int8", "uint8": "uint8",
    "bool": "bool",
    "complex64": "complex64",
}

PRAGMA_RE = re.compile(r"#\s*gradxray\s*:\s*(.*)$")


class InputSpecError(ValueError):
    pass


@dataclass(frozen=True)
class InputSpec:
    name: str
    dims: tuple           # ints and dim names, e.g. ("B", 3, "H", "W"); None for an explicit `x=None`
    dtype: str            # canonical dtype name
    line: int | None = None     # pragma line, when it came from a pragma
    source: str = "pragma"      # "pragma" | "settings" | "annotation" | "example" | "example in <test file>"

    def shape_text(self) -> tuple[str, ...]:
        return tuple(str(d) for d in (self.dims or ()))


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return parts


_ITEM_RE = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(.*?)\s*$")
_SHAPE_RE = re.compile(r"^\[([^\]]*)\]\s*(?::\s*|\s+)?((?:torch\.)?[A-Za-z_]\w*)?\s*$|"
                       r"^\(([^()]*)\)\s*(?::\s*|\s+)?((?:torch\.)?[A-Za-z_]\w*)?\s*$")
_DIM_EXPR_RE = re.compile(r"^[A-Za-z0-9_*+\-/ ()]+$")


def parse_shape(text: str, name: str = "x") -> tuple[tuple, str] | None:
    """``[B, 3, H, W] float32`` / ``[B,T]:int64`` -> ((\"B\", 3, \"H\", \"W\"), \"float32\").
    ``None`` -> None (the argument is passed as None)."""
    text = text.strip()
    if text == "None":
        return None
    m = _SHAPE_RE.match(text)
    if not m:
        raise InputSpecError(f"cannot parse the shape of `{name}`: expected `{name}=[B, ...] dtype`, got `{text}`")
    body, dtype = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
    dims = []
    for d in body.split(","):
        d = d.strip()
        if not d:
            continue
        if re.fullmatch(r"\d+", d):
            dims.append(int(d))
        elif re.fullmatch(r"[A-Za-z_]\w*", d):
            dims.append(d)
        elif _DIM_EXPR_RE.match(d) and _dim_expr_ok(d):
            dims.append(" ".join(d.split()))
        else:
            raise InputSpecError(f"cannot parse dim `{d}` of `{name}`: use a number, a dim name (B, T, H, W …) "
                                 f"or arithmetic on them (B*T, H/2)")
    dtype = (dtype or "float32").removeprefix("torch.")
    canon = DTYPE_ALIASES.get(dtype)
    if canon is None:
        raise InputSpecError(f"unknown dtype `{dtype}` for `{name}`")
    return tuple(dims), canon


def parse_pragma(text: str, line: int | None = None) -> list[InputSpec]:
    """Parse the part after ``# gradxray:``; raises InputSpecError."""
    specs = []
    for item in _split_top(text):
        m = _ITEM_RE.match(item)
        if not m:
            raise InputSpecError(f"cannot parse input pragma item `{item.strip()}`: expected `name=[dims] dtype`")
        name, rest = m.group(1), m.group(2)
        parsed = parse_shape(rest, name)
        if parsed is None:
            specs.append(InputSpec(name, None, "none", line))
        else:
            specs.append(InputSpec(name, parsed[0], parsed[1], line))
    return specs


def find_pragma(index: ModuleIndex, fn: ast.FunctionDef) -> tuple[int, str] | None:
    """(line, text after `gradxray:`) of the input pragma on a function's signature, if any."""
    for ln, text in pragma_lines(index, fn):
        m = PRAGMA_RE.search(text)
        if m:
            body = m.group(1).strip()
            if body.lower().startswith("noqa"):
                continue
            return ln, body
    return None


def _dim_expr_ok(text: str) -> bool:
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Load, ast.Add, ast.Sub,
               ast.Mult, ast.Div, ast.FloorDiv, ast.USub, ast.UAdd)
    return all(isinstance(n, allowed) for n in ast.walk(tree))


def _eval_dim(node, spec: InputSpec, bindings):
    if isinstance(node, ast.Expression):
        return _eval_dim(node.body, spec, bindings)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        return _bind_name(node.id, spec, bindings)
    if isinstance(node, ast.UnaryOp):
        v = _eval_dim(node.operand, spec, bindings)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _eval_dim(node.left, spec, bindings), _eval_dim(node.right, spec, bindings)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if int(b) == 0 or int(a) % int(b):
            raise InputSpecError(f"dim of `{spec.name}` does not divide exactly: {int(a)} / {int(b)}")
        return a // b
    raise InputSpecError(f"cannot evaluate a dim of `{spec.name}`")


def _bind_name(d: str, spec: InputSpec, bindings) -> SymInt:
    if d not in bindings:
        known = ", ".join(sorted(bindings))
        raise InputSpecError(
            f"unknown dim `{d}` in the shape of `{spec.name}` (known: {known}); "
            f"bind it with `--dim {d}=N` or `dims` in [tool.gradxray]")
    return SymInt(bindings[d], d)


def bind_dims(spec: InputSpec, bindings: dict[str, int]) -> tuple:
    out = []
    for d in spec.dims or ():
        if isinstance(d, str):
            if re.fullmatch(r"[A-Za-z_]\w*", d):
                out.append(_bind_name(d, spec, bindings))
            else:
                out.append(_eval_dim(ast.parse(d, mode="eval"), spec, bindings))
        else:
            out.append(int(d))
    for d in out:
        if int(d) < 0:
            raise InputSpecError(f"negative dim in the shape of `{spec.name}`")
    return tuple(out)


# --- example calls: `model = Net(...)` ... `model(torch.randn(2, 3, 32, 32))` ---------------

_CREATORS = {"randn", "rand", "zeros", "ones", "empty", "randint", "full"}


def _literal_shape(call: ast.Call, imports) -> tuple[tuple, str] | None:
    name = dotted_name(call.func)
    if not name:
        return None
    full = resolve_dotted(name, imports)
    if not full.startswith("torch.") or full.split(".")[-1] not in _CREATORS or full.count(".") != 1:
        return None
    kind = full.split(".")[-1]
    args = list(call.args)
    if kind == "randint":            # randint(low?, high, size)
        args = [a for a in args if isinstance(a, (ast.Tuple, ast.List))][:1]
    elif kind == "full":
        args = args[:1]
    if len(args) == 1 and isinstance(args[0], (ast.Tuple, ast.List)):
        args = list(args[0].elts)
    dims = []
    for a in args:
        if isinstance(a, ast.Constant) and isinstance(a.value, int) and not isinstance(a.value, bool):
            dims.append(a.value)
        else:
            return None
    dtype = "int64" if kind == "randint" else "float32"
    for kw in call.keywords:
        if kw.arg == "dtype":
            dn = dotted_name(kw.value)
            if dn:
                dtype = DTYPE_ALIASES.get(dn.split(".")[-1], dtype)
    return tuple(dims), dtype


def find_example_call(index: ModuleIndex, class_name: str, params: list[str]) -> list[InputSpec] | None:
    """Look for `m = ClassName(...)` then `m(torch.randn(...))`, or `ClassName(...)(torch.randn(...))`."""
    instances: set[str] = set()
    calls: list[ast.Call] = []
    for node in ast.walk(index.tree):
        if isinstance(node, ast.Call):
            calls.append(node)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                dotted_name(node.value.func) == class_name:
            instances.update(t.id for t in node.targets if isinstance(t, ast.Name))
    for node in calls:
        f = node.func
        hit = (isinstance(f, ast.Name) and f.id in instances) or (
            isinstance(f, ast.Call) and dotted_name(f.func) == class_name)
        if not hit or not node.args:
            continue
        specs = []
        for i, a in enumerate(node.args):
            if i >= len(params) or not isinstance(a, ast.Call):
                break
            shape = _literal_shape(a, index.imports)
            if shape is None:
                break
            specs.append(InputSpec(params[i], shape[0], shape[1], node.lineno, "example"))
        if specs:
            return specs
    return None


# --- shape annotations: jaxtyping `Float[Tensor, "B 3 H W"]`, `Annotated[Tensor, "[B, T] int64"]` ---------

# jaxtyping dtype classes -> dtype of the example tensor
_JAXTYPING_DTYPES = {
    "Float": "float32", "Float32": "float32", "Float16": "float16", "Float64": "float64",
    "BFloat16": "bfloat16", "Shaped": "float32", "Num": "float32", "Inexact": "float32", "Real": "float32",
    "Int": "int64", "Integer": "int64", "Int64": "int64", "Int32": "int32", "Int16": "int16", "Int8": "int8",
    "UInt8": "uint8", "Bool": "bool",
}
# the names jaxtyping users give common dims, mapped onto the dims gradxray binds (B, T, H, W)
_DIM_ALIASES = {
    "b": "B", "batch": "B", "bs": "B", "batch_size": "B",
    "t": "T", "seq": "T", "seq_len": "T", "seqlen": "T", "time": "T", "tokens": "T", "length": "T",
    "h": "H", "height": "H", "w": "W", "width": "W",
}


def _jaxtyping_dims(text: str, name: str) -> tuple | None:
    """``"batch 3 height width"`` -> ("B", 3, "H", "W"); None when a dim has no fixed count or size
    (``*batch``, ``...``, ``_``), which a concrete example tensor cannot stand for."""
    dims = []
    for d in text.split():
        d = d.lstrip("#")                         # broadcastable marker: the size is still the size
        if d.startswith("*") or d in ("...", "_") or d.startswith("_"):
            return None
        if "=" in d:                              # `name=expr`: the expression gives the size
            d = d.split("=", 1)[1]
        if re.fullmatch(r"\d+", d):
            dims.append(int(d))
        elif re.fullmatch(r"[A-Za-z_]\w*", d):
            dims.append(_DIM_ALIASES.get(d.lower(), d) if d not in ("B", "T", "H", "W") else d)
        elif _DIM_EXPR_RE.match(d) and _dim_expr_ok(d):
            dims.append(d)
        else:
            raise InputSpecError(f"cannot read dim `{d}` of the annotation of `{name}`")
    return tuple(dims)


def annotation_spec(arg: ast.arg, imports, line: int) -> InputSpec | None:
    """The input spec a parameter's shape annotation gives, or None when it has none."""
    ann = arg.annotation
    if not isinstance(ann, ast.Subscript):
        return None
    head = dotted_name(ann.value)
    if not head:
        return None
    full = resolve_dotted(head, imports)
    items = list(ann.slice.elts) if isinstance(ann.slice, ast.Tuple) else [ann.slice]
    strings = [i.value for i in items[1:] if isinstance(i, ast.Constant) and isinstance(i.value, str)]
    if not strings:
        return None
    kind = full.rsplit(".", 1)[-1]
    if full.startswith("jaxtyping."):
        dims = _jaxtyping_dims(strings[0], arg.arg)
        if dims is None or kind not in _JAXTYPING_DTYPES:
            return None
        return InputSpec(arg.arg, dims, _JAXTYPING_DTYPES[kind], line, "annotation")
    if kind == "Annotated" and (full.startswith("typing") or full == "Annotated"):
        text = strings[0].strip()
        if text.startswith(("[", "(")):
            parsed = parse_shape(text, arg.arg)
            if parsed is None:
                return None
            dims, dtype = parsed
        else:
            dims = _jaxtyping_dims(text, arg.arg)
            if dims is None:
                return None
            dtype = "float32"
            for extra in strings[1:]:
                dtype = DTYPE_ALIASES.get(extra.strip().removeprefix("torch."), dtype)
        return InputSpec(arg.arg, dims, dtype, line, "annotation")
    return None


def annotation_specs(index: ModuleIndex, fn: ast.FunctionDef) -> tuple[dict[str, InputSpec], list]:
    """Specs from the forward's parameter annotations, and notes for annotations that cannot be read."""
    specs, diags = {}, []
    a = fn.args
    for arg in [*positional_params(a)[1:], *a.kwonlyargs]:
        try:
            spec = annotation_spec(arg, index.imports, arg.lineno)
        except InputSpecError as e:
            diags.append(_note(index, arg.lineno, str(e), arg.col_offset))
            continue
        if spec is not None:
            specs[arg.arg] = spec
    return specs, diags


# --- example calls in the project's tests -----------------------------------------------------------

MAX_TEST_FILES = 400           # a folder of tests larger than this is sampled in path order
MAX_TEST_FILE_BYTES = 500_000


def _test_folders(path: str, roots) -> list[str]:
    from .project import workspace_roots

    out = []
    for root in workspace_roots(path, roots):
        for name in ("tests", "test"):
            folder = os.path.join(root, name)
            if os.path.isdir(folder) and folder not in out:
                out.append(folder)
    return out


# test files by (size, mtime): the language server re-analyses on every keystroke, and a folder of
# tests rarely changes meanwhile
_TEST_FILES: dict[str, tuple] = {}


def _test_file(path: str, class_name: str, index_source):
    """(text, index) of a test file — the index only when the text names ``class_name`` — or
    (None, None) when it is too big, unreadable or not Python."""
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    key = (st.st_size, st.st_mtime_ns)
    cached = _TEST_FILES.get(path)
    if cached is None or cached[0] != key:
        text = None
        if st.st_size <= MAX_TEST_FILE_BYTES:
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError):
                text = None
        cached = _TEST_FILES[path] = [key, text, None]
    text = cached[1]
    if text is None or class_name not in text:
        return text, None
    if cached[2] is None:
        try:
            cached[2] = index_source(text, path)
        except (SyntaxError, ValueError):
            cached[1] = None
            return None, None
    return text, cached[2]


def find_example_call_in_tests(path: str, class_name: str, params: list[str], roots=()) -> list[InputSpec] | None:
    """An example call (``Net(...)(torch.randn(2, 3, 32, 32))``) of ``class_name`` in the project's
    ``tests/`` folder.  Files are read and parsed, never imported; only those naming the class are parsed."""
    from .project import index_source

    for seen, (folder, fpath) in enumerate(project_test_files(path, roots), 1):
        if seen > MAX_TEST_FILES:
            return None
        _text, index = _test_file(fpath, class_name, index_source)
        if index is None:
            continue
        found = find_example_call(index, class_name, params)
        if found:
            return [InputSpec(s.name, s.dims, s.dtype, None, f"example in {os.path.relpath(fpath, folder)}")
                    for s in found]
    return None


def project_test_files(path: str, roots=()):
    """(test folder, path) of each Python file in the project's test folders, in path order."""
    for folder in _test_folders(path, roots):
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__pycache__")))
            for fname in sorted(filenames):
                if fname.endswith(".py"):
                    yield folder, os.path.join(dirpath, fname)


def make_input_tensors(specs: list[InputSpec], settings, runtime) -> dict:
    """name -> engine tensor (data-less), or None for an explicit `x=None`."""
    bindings = settings.dim_bindings()
    out = {}
    for spec in specs:
        if spec.dims is None:
            out[spec.name] = None
            continue
        shape = bind_dims(spec, bindings)
        out[spec.name] = runtime.make_input(shape, spec.dtype, settings.device)
    return out


# --- discovery for one forward -------------------------------------------------------------------

def forward_params(fn: ast.FunctionDef) -> tuple[list[str], set[str], bool]:
    """(parameter names after self, required names, accepts **kwargs)."""
    a = fn.args
    positional = positional_params(a)
    names = [p.arg for p in positional[1:] + a.kwonlyargs]
    required = {p.arg for p in required_params(a) if p not in positional[:1]}
    return names, required, a.kwarg is not None


def _note(index: ModuleIndex, line: int, message: str, col: int | None = None, fix=None):
    text = index.lines[line - 1] if 1 <= line <= len(index.lines) else ""
    start = col if col is not None else len(text.encode("utf-8")) - len(text.lstrip().encode("utf-8"))
    return Diagnostic(code="GX901", message=message, severity="information",
                      span=Span(index.path, line, start, line, len(text.encode("utf-8"))), fix=fix)


def spec_text(spec: InputSpec) -> str:
    if spec.dims is None:
        return f"{spec.name}=None"
    return f"{spec.name}=[{', '.join(str(d) for d in spec.dims)}] {spec.dtype}"


def missing_input_note(index: ModuleIndex, class_name: str, fn: ast.FunctionDef, missing: list[str],
                       assumed: list[InputSpec] | None = None, anchor: ast.AST | None = None):
    """GX901 on the forward line; with a fix inserting the pragma when shapes were assumed.  ``anchor``:
    the class or factory function of ``index`` (the analysed file) where the note and pragma go when
    the forward is defined in another file (an installed package's model)."""
    by_name = {s.name: s for s in assumed or []}
    example = ", ".join(spec_text(by_name[n]) if n in by_name else f"{n}=[B, ...] float32" for n in missing)
    message = GX901_MESSAGE.format(cls=class_name, example=example)
    where = anchor if anchor is not None else fn
    if anchor is not None:
        message += f" on this line (its forward is in another file), or pass --input {_cli_text(missing, by_name)}"
    fix = None
    if assumed:
        last = signature_end_line(where)
        text = index.lines[last - 1] if 1 <= last <= len(index.lines) else ""
        end = len(text.rstrip().encode("utf-8"))
        pragma = "  # gradxray: " + ", ".join(spec_text(s) for s in assumed)
        fix = Fix(applicability="unsafe", message="Insert an input-shape pragma",
                  edits=[Edit(Span(index.path, last, end, last, end), pragma)])
    return _note(index, where.lineno, message, where.col_offset, fix)


def _cli_text(missing: list[str], by_name: dict) -> str:
    """``--input`` values for ``missing``: ``input_ids=[B,T]:int64``."""
    def one(n):
        spec = by_name.get(n)
        if spec is None or not spec.dims:
            return f"{n}=[B,...]:float32"
        return f"{n}=[{','.join(str(d) for d in spec.dims)}]:{spec.dtype}"
    return " --input ".join(one(n) for n in missing)


@dataclass
class Discovery:
    specs: list[InputSpec]          # shapes found (pragma, settings, example call), in parameter order
    diagnostics: list
    missing: list[str]              # required parameters without a shape
    fatal: bool = False             # a bad pragma or an unbound dim: the forward cannot be run
    # ``missing`` is the first parameter of a forward whose parameters all default to None (HF style:
    # ``forward(self, input_ids=None, ...)``): the forward can run without it, if not usefully
    optional: bool = False


def _may_be_tensor(arg: ast.arg, default) -> bool:
    """Whether a parameter defaulting to None may be the tensor input: unannotated, or annotated with
    a type that names a tensor (``Optional[torch.LongTensor]``, ``torch.Tensor | None``)."""
    return _is_none(default) and (arg.annotation is None or "Tensor" in ast.unparse(arg.annotation))


def discover_inputs(index: ModuleIndex, class_name: str, fn: ast.FunctionDef, settings,
                    fn_index: ModuleIndex | None = None, anchor: ast.AST | None = None) -> Discovery:
    """Input specs for ``class_name.forward`` from ``settings.inputs``, the pragma or an example call.

    ``index`` is the analysed file (example calls, notes); ``fn_index`` the file that defines ``fn``
    when that is another one (its pragma and annotations), and ``anchor`` then the class or factory
    function of the analysed file that also takes the pragma.  Required parameters left without a
    shape are listed in ``missing`` (the caller may infer them from their first consumer;
    ``missing_input_note`` makes the GX901 note); so is the first parameter when none has a shape
    and all default to None (``optional``)."""
    fn_index = fn_index or index
    names, required, has_kwargs = forward_params(fn)
    diags = []
    specs: dict[str, InputSpec] = {}
    pragma_index = fn_index
    pragma = find_pragma(fn_index, fn)
    if pragma is None and anchor is not None:
        pragma_index, pragma = index, find_pragma(index, anchor)
    pragma_bad = False
    if pragma is not None:
        pragma_line, text = pragma
        col = pragma_index.lines[pragma_line - 1].find("#")
        try:
            for spec in parse_pragma(text, pragma_line):
                specs[spec.name] = spec
        except InputSpecError as e:
            diags.append(_note(pragma_index, pragma_line, f"invalid input-shape pragma: {e}",
                               len(pragma_index.lines[pragma_line - 1][:col].encode("utf-8"))))
            pragma_bad = True
    note_index, note_node = (index, anchor) if anchor is not None else (fn_index, fn)
    for name, text in (settings.inputs or {}).items():
        if name not in names and not has_kwargs:
            continue
        try:
            parsed = parse_shape(text, name)
        except InputSpecError as e:
            diags.append(_note(note_index, note_node.lineno, f"invalid --input for `{name}`: {e}"))
            continue
        specs[name] = InputSpec(name, None, "none", None, "settings") if parsed is None else \
            InputSpec(name, parsed[0], parsed[1], None, "settings")
    if not pragma_bad:
        annotated, notes = annotation_specs(fn_index, fn)
        diags.extend(notes)
        for name, spec in annotated.items():
            specs.setdefault(name, spec)
    if not specs and not pragma_bad:
        example = find_example_call(index, class_name, names)
        if not example and index.path:
            example = find_example_call_in_tests(index.path, class_name, names, getattr(settings, "roots", ()))
        if example:
            specs = {s.name: s for s in example}
    bindings = settings.dim_bindings()
    for name in list(specs):
        spec = specs[name]
        spec_index = pragma_index if spec.line else note_index
        if name not in names and not has_kwargs:
            diags.append(_note(spec_index, spec.line or note_node.lineno,
                               f"input `{name}` is not a parameter of {class_name}.forward"))
            del specs[name]
            continue
        try:
            bind_dims(spec, bindings)
        except InputSpecError as e:
            diags.append(_note(spec_index, spec.line or note_node.lineno, str(e)))
            return Discovery([], diags, [], fatal=True)
    ordered = [specs[n] for n in names if n in specs] + [s for n, s in specs.items() if n not in names]
    if pragma_bad:
        return Discovery(ordered, diags, [], fatal=True)
    missing = [n for n in names if n in required and n not in specs]
    if not specs and not missing:
        params = _params_with_defaults(fn)
        if params and _may_be_tensor(*params[0]):
            return Discovery(ordered, diags, [params[0][0].arg], optional=True)
    return Discovery(ordered, diags, missing)


# --- inference from the first consumer -----------------------------------------------------------

def _shape_for_consumer(mod) -> tuple[tuple, str] | None:
    """The input a layer expects, by its class: Embedding -> [B, T] int64, Conv2d(c) -> [B, c, H, W] ..."""
    for klass in type(mod).__mro__:
        name = klass.__name__
        if name == "Embedding":
            return ("B", "T"), "int64"
        if name == "Conv2d" and hasattr(mod, "in_channels"):
            return ("B", int(mod.in_channels), "H", "W"), "float32"
        if name == "Conv1d" and hasattr(mod, "in_channels"):
            return ("B", int(mod.in_channels), "T"), "float32"
        if name == "Linear" and hasattr(mod, "in_features"):
            return ("B", int(mod.in_features)), "float32"
        if name == "LayerNorm" and hasattr(mod, "normalized_shape"):
            return ("B", "T", *(int(d) for d in mod.normalized_shape)), "float32"
        if name == "BatchNorm2d" and hasattr(mod, "num_features"):
            return ("B", int(mod.num_features), "H", "W"), "float32"
        if name == "BatchNorm1d" and hasattr(mod, "num_features"):
            return ("B", int(mod.num_features)), "float32"
    return None


class ConsumerLookup:
    """What inference from the first consumer asks of the analysis about the built model (the
    interpreter implements it; tests may stand in)."""

    def submodule(self, owner, path: list[str]):
        """The module ``owner.<path>`` holds, or None."""
        raise NotImplementedError

    def method(self, owner, name: str) -> ast.FunctionDef | None:
        """The source of ``owner``'s plain method ``name`` (``forward`` included), or None."""
        raise NotImplementedError


# library layers whose output has their input's shape: an input passed through one still has its shape
SHAPE_KEEPING_LAYERS = frozenset({
    "Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "ReLU", "ReLU6", "GELU",
    "SiLU", "Sigmoid", "Tanh", "Hardswish", "Hardsigmoid", "Hardtanh", "LeakyReLU", "ELU", "SELU", "CELU",
    "Mish", "PReLU", "Softplus", "Softmax", "LogSoftmax", "Softsign",
})
MAX_CONSUMER_DEPTH = 12      # calls followed from forward to the layer that consumes an input


def infer_from_consumers(fn: ast.FunctionDef, params: list[str], owner, lookup: ConsumerLookup):
    """Assumed specs for ``params`` of ``owner``'s method ``fn``, each from the layer that first
    consumes it: followed through calls of ``self``'s methods (``self._forward_impl(x)``,
    ``self.forward_features(x)``) and of submodules' own forwards (``self.embeddings(input_ids=...)``),
    by position or keyword, and into a ``Sequential``'s first layer.  None when one is not found."""
    out = []
    for p in params:
        found = _consumer_shape(fn, p, owner, lookup, 0, set())
        if found is None or found is _STOPPED:
            return None
        out.append(InputSpec(p, found[0], found[1], None, "inferred"))
    return out


# tensor methods whose result has the tensor's shape: `self.proj(x.to(dtype))` consumes x
SHAPE_KEEPING_METHODS = frozenset({"to", "float", "half", "bfloat16", "double", "long", "int", "type",
                                   "contiguous", "clone", "detach"})


def _is_param(node, param: str) -> bool:
    """``param`` itself, or ``param.to(...)`` and other calls that keep its shape."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr in SHAPE_KEEPING_METHODS:
        node = node.func.value
    return isinstance(node, ast.Name) and node.id == param


def _self_path(node) -> list[str] | None:
    """``["a", "b"]`` for ``self.a.b`` (at most 4 attributes deep), else None."""
    path = dotted_name(node) or ""
    return path.split(".")[1:] if path.startswith("self.") and path.count(".") <= 4 else None


def _first_element(container, values: bool = False):
    """The first module a ModuleList / Sequential (or a ModuleDict's ``values()``) holds, else None."""
    try:
        element = next(iter(container.values() if values else container))
    except Exception:
        return None
    return element if any(k.__name__ == "Module" for k in type(element).__mro__) else None


def _calls_passing(fn: ast.FunctionDef, param: str):
    """(call, position, keyword) for each call in ``fn`` (in source order) that passes ``param`` (or
    ``param.to(...)``) as its ``position``-th argument or as ``keyword=`` (the other one None)."""
    calls = sorted((n for n in ast.walk(fn) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset))
    for call in calls:
        for i, arg in enumerate(call.args):
            if isinstance(arg, ast.Starred):
                break                            # later positions are unknown
            if _is_param(arg, param):
                yield call, i, None
                break
        else:
            for kw in call.keywords:
                if kw.arg is not None and _is_param(kw.value, param):
                    yield call, None, kw.arg
                    break


def _param_for(fn: ast.FunctionDef, position: int | None, keyword: str | None) -> str | None:
    """The parameter of method ``fn`` (after ``self``) an argument at ``position`` or ``keyword`` binds."""
    a = fn.args
    positional = positional_params(a)[1:]
    if position is not None:
        return positional[position].arg if position < len(positional) else None
    names = {p.arg for p in positional if p not in a.posonlyargs} | {p.arg for p in a.kwonlyargs}
    return keyword if keyword in names else None


def _assigns(stmt, name: str) -> bool:
    """Whether ``stmt`` is an assignment whose targets bind ``name`` (``x = ...``, ``x, size = ...``)."""
    targets = stmt.targets if isinstance(stmt, ast.Assign) else \
        [stmt.target] if isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) else []
    return any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t))


def _rebinding_calls(fn, param: str) -> tuple[set[int], set[int]]:
    """(ids of the calls whose result is assigned to ``param`` again -- ``x = f(x)``, ``x, size =
    embed(x)`` --, the ids of those among them that run only under an ``if``)."""
    out, conditional = set(), set()

    def visit(body, under_if):
        for node in body:
            if isinstance(getattr(node, "value", None), ast.Call) and _assigns(node, param):
                out.add(id(node.value))
                if under_if:
                    conditional.add(id(node.value))
            for field in ("body", "orelse", "finalbody"):
                sub = getattr(node, field, None)
                if isinstance(sub, list):
                    visit(sub, under_if or isinstance(node, ast.If))
            for handler in getattr(node, "handlers", ()):
                visit(handler.body, True)

    visit(fn.body, False)
    return out, conditional


_STOPPED = "stopped"     # the input was replaced by a value the search cannot see into: no later consumer counts


@dataclass
class _Frame:
    """A function on the way from forward to the layer that consumes an input."""
    fn: ast.FunctionDef
    param: str                      # the input's name there
    call: ast.Call | None = None    # the call in ``fn`` that passes it on to the next frame


def _consumer_shape(fn, param: str, owner, lookup: ConsumerLookup, depth: int, seen: set,
                    trail: list | None = None):
    """The shape ``param`` of ``fn`` is first consumed as, None, or _STOPPED.  ``trail`` receives the
    frames from ``fn`` to the consumer when one is found."""
    key = (id(fn), param, id(owner))
    if depth > MAX_CONSUMER_DEPTH or key in seen:
        return None
    seen.add(key)
    frame = _Frame(fn, param)
    if trail is not None:
        trail.append(frame)
    found = _consumer_in(frame, owner, lookup, depth, seen, trail)
    if trail is not None and (found is None or found is _STOPPED):
        trail.pop()
    return found


def _consumer_in(frame: _Frame, owner, lookup: ConsumerLookup, depth: int, seen: set, trail):
    fn, param = frame.fn, frame.param
    rebinding = None
    for call, position, keyword in _calls_passing(fn, param):
        frame.call = call
        parts = _self_path(call.func) or []
        method = lookup.method(owner, parts[0]) if len(parts) == 1 else None
        module = lookup.submodule(owner, parts) if parts and method is None else None
        if method is not None:                  # a method of the same module: its parameter
            target = _param_for(method, position, keyword)
            found = _consumer_shape(method, target, owner, lookup, depth + 1, seen, trail) if target else None
        elif module is not None:
            found = _module_input_shape(module, position, keyword, lookup, depth + 1, seen, trail)
        elif (element := _loop_element(fn, call, owner, lookup)) is not None:
            # `for blk in self.blocks: x = blk(x)`: the first block consumes it first
            found = _module_input_shape(element, position, keyword, lookup, depth + 1, seen, trail)
        else:
            found = _STOPPED                     # a call it cannot follow (`embed(x)`, `F.pad(x, ...)`)
        if found is _STOPPED:
            if rebinding is None:
                rebinding = _rebinding_calls(fn, param)
            replaced, conditional = rebinding
            # `x = blk(x)`: what follows sees another value, unless it may not run (under an `if`)
            if id(call) in replaced and id(call) not in conditional:
                return _STOPPED
            continue
        if found is not None:
            return found
    frame.call = None
    return None


def _loop_element(fn, call: ast.Call, owner, lookup: ConsumerLookup):
    """The module a call of a loop variable makes first: ``blk`` of ``for blk in self.blocks``,
    ``for i, blk in enumerate(self.blocks)``, ``for embed, blk in zip(self.embeds, self.blocks)``,
    ``for blk in self.stages.values()`` (a ModuleDict), the loop being around ``call``; else None."""
    if not isinstance(call.func, ast.Name):
        return None
    for node in ast.walk(fn):
        if isinstance(node, ast.For) and node.lineno < call.lineno <= (node.end_lineno or node.lineno):
            source = _iterated_by(node.target, node.iter, call.func.id)
            if source is not None:
                parts, values = source
                holder = lookup.submodule(owner, parts)
                return _first_element(holder, values) if holder is not None else None
    return None


def _iterated_by(target, iterable, name: str):
    """(path after ``self.`` of the container, whether its ``values()`` are iterated) when the loop
    target ``target`` over ``iterable`` binds ``name`` to its elements, else None."""
    if isinstance(target, ast.Name):
        if target.id != name:
            return None
        values = isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute) \
            and iterable.func.attr == "values" and not iterable.args
        parts = _self_path(iterable.func.value if values else iterable)
        return (parts, values) if parts is not None else None
    if not (isinstance(target, ast.Tuple) and isinstance(iterable, ast.Call)):
        return None
    called = dotted_name(iterable.func)
    if called == "enumerate" and len(target.elts) == 2 and iterable.args:
        return _iterated_by(target.elts[1], iterable.args[0], name)
    if called == "zip" and len(target.elts) == len(iterable.args):
        for t, it in zip(target.elts, iterable.args):
            found = _iterated_by(t, it, name)
            if found is not None:
                return found
    return None


def _module_input_shape(mod, position, keyword, lookup: ConsumerLookup, depth: int, seen: set,
                        trail: list | None = None):
    """The shape ``mod`` expects for the argument at ``position`` / ``keyword`` of its call."""
    if mod is None or depth > MAX_CONSUMER_DEPTH:
        return None
    first = position == 0 or keyword == "input"
    shape = _shape_for_consumer(mod)
    if shape is not None:
        return shape if first else None
    names = [k.__name__ for k in type(mod).__mro__]
    forward = lookup.method(mod, "forward")
    if ("Sequential" in names or "ModuleList" in names) and hasattr(mod, "__iter__") and first:
        found = _module_input_shape(_first_element(mod), 0, None, lookup, depth + 1, seen, trail)
        if (found is not None and found is not _STOPPED) or forward is None:
            return found
    if forward is None:                         # a library layer: one that keeps the shape is seen through
        return None if names[0] in SHAPE_KEEPING_LAYERS else _STOPPED
    target = _param_for(forward, position, keyword)
    return _consumer_shape(forward, target, mod, lookup, depth + 1, seen, trail) if target else None


# --- optional inputs a forward needs ---------------------------------------------------------------
#
# An HF encoder-decoder or multimodal model's forward takes every input as optional, yet raises
# without some of them (T5's decoder: "You have to specify either decoder_input_ids or
# decoder_inputs_embeds"; CLIP's vision tower: "You have to specify pixel_values").  Such an input is
# found by following it to its consumer, as above, and reading the `if` chains on the way with what
# is known of each argument: given (an input the analysis passes), None, or unknown.

def needed_optional_inputs(fn: ast.FunctionDef, given: list[str], owner, lookup: ConsumerLookup) -> list[InputSpec]:
    """Specs for the parameters of ``owner``'s ``fn`` that default to None and that, passed as None
    beside the ``given`` ones, reach a ``raise`` on the way to the layer that consumes them, or that
    layer itself (no ``if`` on the way tests them, none assigns them)."""
    out = []
    known = set(given)
    for arg, default in _params_with_defaults(fn):
        if arg.arg in known or not _may_be_tensor(arg, default):
            continue
        trail: list[_Frame] = []
        found = _consumer_shape(fn, arg.arg, owner, lookup, 0, set(), trail)
        if found is None or found is _STOPPED:
            continue
        bindings = {a.arg: ("given" if a.arg in known else "none" if _is_none(d) else None)
                    for a, d in _params_with_defaults(fn)}
        bindings[arg.arg] = "none"
        if fn.args.kwarg is not None:            # the analysis passes forward its inputs and nothing else
            bindings["**" + fn.args.kwarg.arg] = "empty"
        if _needed_on_the_way(trail, bindings):
            out.append(InputSpec(arg.arg, found[0], found[1], None, "inferred"))
            known.add(arg.arg)
    return out


def _params_with_defaults(fn: ast.FunctionDef):
    """(parameter, default node or None) after ``self``, positional then keyword-only."""
    a = fn.args
    positional = positional_params(a)
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    return list(zip(positional[1:], defaults[1:])) + list(zip(a.kwonlyargs, a.kw_defaults))


def _is_none(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _needed_on_the_way(trail: list[_Frame], bindings: dict) -> bool:
    """Whether the input, None, makes a frame raise or reaches its consuming layer as None."""
    for i, frame in enumerate(trail):
        if _guard_raises(frame.fn, bindings):
            return True
        if frame.call is None:
            return False
        if _assigned_before(frame.fn, frame.param, frame.call) or _under_a_test_of(frame.fn, frame.call, frame.param):
            return False                         # `if ids is None: ids = shift(...)`: it copes without
        if i + 1 == len(trail):
            return True                          # the layer that consumes it would get None
        bindings = _callee_bindings(trail[i + 1], frame.call, bindings)
    return False


def _under_a_test_of(fn: ast.FunctionDef, call: ast.Call, name: str) -> bool:
    """Whether ``call`` runs only under an ``if`` (or ``... if ... else ...``) whose test reads ``name``."""
    def visit(node, tested: bool) -> bool | None:
        if node is call:
            return tested
        reads = isinstance(node, (ast.If, ast.IfExp, ast.While)) and any(
            isinstance(n, ast.Name) and n.id == name for n in ast.walk(node.test))
        for child in ast.iter_child_nodes(node):
            inside = tested or (reads and child is not node.test)
            found = visit(child, inside)
            if found is not None:
                return found
        return None
    return bool(visit(fn, False))


def _assigned_before(fn: ast.FunctionDef, name: str, call: ast.Call) -> bool:
    """Whether ``fn`` assigns ``name`` on a line before ``call``."""
    return any(isinstance(node, ast.stmt) and node.lineno < call.lineno and _assigns(node, name)
               for node in ast.walk(fn))


def _callee_bindings(callee: _Frame, call: ast.Call, caller: dict) -> dict:
    """What is known of each parameter of ``callee.fn`` (a method: ``self`` first) at ``call``."""
    params = _params_with_defaults(callee.fn)
    out = {a.arg: ("none" if _is_none(d) else None) for a, d in params}
    positional = positional_params(callee.fn.args)[1:]
    for i, arg in enumerate(call.args):
        if isinstance(arg, ast.Starred) or i >= len(positional):
            break
        out[positional[i].arg] = _argument_state(arg, caller)
    extra = False
    for kw in call.keywords:
        if kw.arg is None:                       # `**kwargs`: known only when the caller's is known empty
            if not (isinstance(kw.value, ast.Name) and caller.get("**" + kw.value.id) == "empty"):
                return {name: None for name in out} | {callee.param: "none"}
        elif kw.arg in out:
            out[kw.arg] = _argument_state(kw.value, caller)
        else:
            extra = True
    if callee.fn.args.kwarg is not None and not extra:
        out["**" + callee.fn.args.kwarg.arg] = "empty"
    out[callee.param] = "none"
    return out


def _argument_state(node, caller: dict):
    if _is_none(node):
        return "none"
    return caller.get(node.id) if isinstance(node, ast.Name) else None


def _guard_raises(fn: ast.FunctionDef, bindings: dict) -> bool:
    """Whether one of the ``if``/``elif``/``else`` chains at the top of ``fn``'s body takes a branch that
    raises, as far as ``bindings`` decide its tests."""
    for stmt in fn.body:
        node = stmt
        while isinstance(node, ast.If):
            taken = _truth(node.test, bindings)
            if taken is None:
                break
            if taken:
                if any(isinstance(s, ast.Raise) for s in node.body):
                    return True
                break
            if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
                node = node.orelse[0]
                continue
            if any(isinstance(s, ast.Raise) for s in node.orelse):
                return True
            break
    return False


def _truth(test, bindings: dict) -> bool | None:
    """The value of an ``if`` test over ``X is None`` / ``X is not None`` of known arguments (``not``,
    ``and``, ``or``, ``^``), or None when it depends on anything else."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.left, ast.Name) \
            and _is_none(test.comparators[0]) and isinstance(test.ops[0], (ast.Is, ast.IsNot)):
        state = bindings.get(test.left.id)
        if state is None:
            return None
        return (state == "none") == isinstance(test.ops[0], ast.Is)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _truth(test.operand, bindings)
        return None if inner is None else not inner
    if isinstance(test, ast.BoolOp):
        values = [_truth(v, bindings) for v in test.values]
        deciding = False if isinstance(test.op, ast.And) else True
        if deciding in values:
            return deciding
        return None if None in values else not deciding
    if isinstance(test, ast.BinOp) and isinstance(test.op, ast.BitXor):
        left, right = _truth(test.left, bindings), _truth(test.right, bindings)
        return None if left is None or right is None else left != right
    return None
