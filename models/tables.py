"""Design-axis tables (SOLVERS, NOISE_SCHEDULES, ...): an entry by name, or an error that lists the names."""

import difflib


def choose(table, kind, name):
    """The entry `name` of a design-axis table, or a ValueError listing the allowed names with a suggestion."""
    if name not in table:
        close = difflib.get_close_matches(str(name), list(table), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name!r} is not a {kind}; allowed: {sorted(table)}{hint}")
    return table[name]
