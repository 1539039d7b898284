"""Go-style durations (`1m30s`, `500ms`) as used in the CRDs, parsed to seconds.

The CRD schema already rejects malformed and zero durations; this parser is the
runtime's second line for values that reach it some other way (flags, old objects).
"""

import re

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"([0-9]+)(ms|h|m|s)")


def parse(text: str) -> float:
    """Return the duration in seconds; raise ValueError if it is malformed or not positive."""
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"invalid duration {text!r}: use a number with a unit h, m, s or ms, e.g. 1m30s")
    if total <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    return total
