"""
## What it does
Notes a `forward` whose input shapes gradxray could not find, and which it
therefore analysed with assumed shapes (or not at all). Emitted by the
analyzer once per module class, on the `forward` line.

## Why is this bad?
Every shape, byte count and FLOP figure gradxray shows comes from the input
shapes. gradxray looks for them, in order, in: a `# gradxray:` pragma on the
`forward` line; `[tool.gradxray]` in `pyproject.toml`; jaxtyping or
`Annotated` shape annotations; an example call in the same file
(`model(torch.randn(2, 3, 32, 32))`); the first consumer of the input
(`nn.Embedding` implies an integer `[B, T]`, `nn.Conv2d(3, ...)` implies
`[B, 3, H, W]`), found through the model's helper methods and its submodules'
forwards. When none of these applies, the figures rest on a guess.

A `forward` whose inputs all default to `None` (Hugging Face style,
`forward(self, input_ids=None, attention_mask=None, ...)`) would run with no
input at all: gradxray infers its first input the same way, with the other
inputs it cannot run without (an encoder-decoder's `decoder_input_ids`), and
notes them here.
When the `forward` is defined in another file (a model class of an installed
package, reached through a subclass or a factory function), the note goes on
the class or factory function of the analysed file, and the pragma may sit
there.

This is an analysis note (severity *information*): it never fails
`gradxray check`.

## Example
```python
class Classifier(nn.Module):
    def forward(self, x, mask):
        ...
```

## Use instead
State the shapes with a pragma; symbolic dims (`B`, `T`, `H`, `W`, ...) are
bound by `--batch` / `--dim` or by `[tool.gradxray]`:
```python
class Classifier(nn.Module):
    def forward(self, x, mask):  # gradxray: x=[B, T, 768] float32, mask=[B, T] bool
        ...
```

A class whose `forward` comes from an installed package takes the pragma on
its own line:
```python
class Classifier(transformers.BertForSequenceClassification):  # gradxray: input_ids=[B, T] int64
    pass
```

## Fix safety
Where a fix is offered, it inserts the pragma with the shapes gradxray
assumed. It is marked unsafe: it does not change what the program does, but
the inserted shapes are a guess that should be checked.

The same code also reports an input-shape pragma, `--input` or
`[tool.gradxray] inputs` entry that cannot be used (malformed, or naming a
parameter `forward` does not have).

## References
- gradxray design: *Input shapes, in order of precedence*
- [jaxtyping](https://docs.kidger.site/jaxtyping/)
"""
from __future__ import annotations

CODE = "GX901"
NAME = "unknown-input-shape"
# fields: {cls} the module class, {example} a pragma body naming the inputs
MESSAGE = "no input shape for {cls}.forward; add a `# gradxray: {example}` pragma"
SEVERITY = "information"
FIX = "unsafe"

# No ``check``: the analyzer emits GX901 itself while it discovers input shapes.
