"""An analysis as text, for comparing two runs' results field by field (byte for byte)."""
from __future__ import annotations

import dataclasses
import json


def dump(analysis) -> str:
    return json.dumps(dataclasses.asdict(analysis), default=str, sort_keys=True)
