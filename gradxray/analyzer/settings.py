"""Analysis settings: command-line flags and ``[tool.gradxray]`` merged into one object."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Settings:
    batch: int = 8                                   # binds the dim named B
    dims: dict[str, int] = field(default_factory=lambda: {"T": 256, "H": 224, "W": 224})
    device: str = "cpu"                              # target device semantics: "cpu" | "cuda"
    dtype: str = "float32"
    optimizer: str = "none"                          # none | sgd | sgd-momentum | adam | adamw
    amp: str = "off"                                 # off | fp16 | bf16 (autocast around forward and loss)
    loss: str = "auto"
    checkpoint: str = "none"                         # none | blocks | sqrt | module paths (analyzer.checkpointing)
    inputs: dict[str, str] = field(default_factory=dict)   # name -> "[B, 3, 224, 224]:float32" (CLI --input)
    args: dict = field(default_factory=dict)               # constructor kwargs for the target (--args)
    select: list[str] = field(default_factory=list)        # rule code prefixes; empty = all
    ignore: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)         # extra workspace roots for absolute imports
    search_paths: list[str] = field(default_factory=list)  # folders of installed packages, before sys.path

    def dim_bindings(self) -> dict[str, int]:
        return {"B": self.batch, **self.dims}
