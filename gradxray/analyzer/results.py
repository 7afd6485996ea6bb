"""What an analysis produces.  The CLI and the language server only render these.

Positions: ``line`` is 1-based, ``col`` is 0-based (as in ``ast``).  Renderers
convert (LSP: 0-based lines; JSON: 1-based columns like ruff).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    file: str
    line: int
    col: int = 0
    end_line: int | None = None
    end_col: int | None = None


@dataclass
class TensorFact:
    """One tensor value bound on a line of ``forward`` (an assignment target or a returned value)."""

    name: str                    # target text: "q", "x", "logits"
    shape: tuple[str, ...]       # display dims, symbolic where they come from inputs: ("B", "T", "768")
    concrete_shape: tuple[int, ...]
    dtype: str                   # "float32"
    requires_grad: bool = False

    def shape_text(self) -> str:
        return "[" + ", ".join(self.shape) + "]"


@dataclass
class SavedFact:
    op: str                      # engine op that saved it: "Gelu", "Addmm"
    what: str                    # "input", "mean", "logsumexp" ...
    shape: tuple[int, ...]
    dtype: str
    nbytes: int                  # bytes of new storage (0 when it aliases a tensor already counted)


@dataclass
class LineFact:
    """Everything known about one source line (summed over the times it ran)."""

    file: str
    line: int
    end_col: int = 0             # end of the statement on its last line (inlay hint position)
    tensors: list[TensorFact] = field(default_factory=list)
    calls: int = 0               # times the line ran (a block's forward runs once per layer)
    saved_bytes: int = 0         # activation bytes saved for backward by ops on this line, all calls
    saved: list[SavedFact] = field(default_factory=list)   # per op, first call
    flops_forward: int = 0
    flops_backward: int = 0
    grad_params: list[str] = field(default_factory=list)   # parameters the gradient reaches from here
    end_line: int | None = None  # the statement's last line (None: same as ``line``)


@dataclass
class Fix:
    applicability: str           # "safe" | "unsafe"
    message: str
    edits: list["Edit"] = field(default_factory=list)


@dataclass
class Edit:
    span: Span
    content: str


@dataclass
class Diagnostic:
    code: str
    message: str
    severity: str                # "error" | "warning" | "information" | "hint"
    span: Span
    fix: Fix | None = None


@dataclass
class Unresolved:
    file: str
    line: int
    reason: str
    col: int | None = None       # the expression that lost precision (UTF-8 byte columns, as in ast);
    end_line: int | None = None  # None: the place is the whole statement of ``line``
    end_col: int | None = None


@dataclass
class GradCut:
    """A site where the gradient path is cut, and the parameters it cuts off from the output."""

    kind: str                    # "detach"
    span: Span
    cut_params: list[str]


@dataclass
class ModuleSummary:
    path: str                    # "transformer.h.0.attn"
    cls: str
    params: int
    output_shape: list[int] | None
    saved_bytes: int
    flops: int


@dataclass
class ClassSummary:
    """A module class that was analysed as a root (constructed and run)."""

    name: str
    line: int
    params: int
    param_bytes: int
    peak_bytes: int
    activations_saved_bytes: int
    inputs: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)


@dataclass
class Analysis:
    path: str
    lines: dict[int, LineFact] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    classes: list[ClassSummary] = field(default_factory=list)
    grad_cuts: list[GradCut] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)
    error: str | None = None     # a syntax error or similar: nothing else is filled
