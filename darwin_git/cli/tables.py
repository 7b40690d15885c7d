"""Human tables that fit the terminal: the console's width is the terminal's (COLUMNS when it
is set; piped output without it gets a wide fixed width, so scripts and diffs see whole rows).
Columns that name things (an agent, a commit) and numbers never wrap or lose characters; free
text (a summary, a reason) wraps; when even that is too wide, the columns a reader can do
without go first, in the order each declares, and the caption says which (`--json` has them
all)."""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

PIPED_WIDTH = 160  # piped output without COLUMNS: whole rows for scripts and diffs
WORD = 16  # a wrapping column is at least as wide as its longest word, up to this


def console():
    from rich.console import Console

    width = None
    if not sys.stdout.isatty():
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else \
            max(PIPED_WIDTH, shutil.get_terminal_size().columns)
    return Console(highlight=False, soft_wrap=False, width=width)


@dataclass(frozen=True)
class Column:
    header: str
    justify: str = "left"
    wrap: bool = False  # free text: may wrap onto more lines
    drop: int = 0  # 0: always shown; else the order in which a narrow terminal drops it (1 first)
    least: int = 0  # free text: the width it keeps before optional columns do (if it is that long)


def fit(con, columns: list[Column], rows: list[list[str]], title: str | None = None,
        caption: str | None = None):
    """``rows`` as a table under ``title`` and over ``caption`` that fits ``con``'s width,
    dropping droppable columns (lowest ``drop`` first) only while it would not fit otherwise.
    The widths are decided here, not by rich: a name or number keeps its whole width, free
    text shares what is left, each at least its ``least``."""
    from rich.cells import cell_len

    least = [_least(c, [str(r[i]) for r in rows]) for i, c in enumerate(columns)]
    full = [max([cell_len(c.header)] + [cell_len(line) for r in rows
                                        for line in str(r[i]).splitlines()])
            for i, c in enumerate(columns)]
    shown = list(range(len(columns)))
    # each column: 1 of padding on each side; 1 between two columns; the table's two edges
    room = lambda: con.width - (3 * len(shown) - 1 + 2)
    while sum(least[i] for i in shown) > room():
        droppable = [i for i in shown if columns[i].drop]
        if not droppable:
            break
        shown.remove(min(droppable, key=lambda i: (columns[i].drop, -i)))
    widths = {i: least[i] for i in shown}
    text = [i for i in shown if columns[i].wrap]
    spare = room() - sum(widths.values())
    want = {i: full[i] - least[i] for i in text}
    if spare > 0 and sum(want.values()) > 0:
        if sum(want.values()) <= spare:
            widths.update({i: full[i] for i in text})
        else:
            for i in text:
                widths[i] += spare * want[i] // sum(want.values())
    return _table(columns, rows, shown, widths, title, caption, con.width)


def _least(column: Column, cells: list[str]) -> int:
    """The narrowest a column may be: a name or number whole; free text as wide as its longest
    word (up to WORD: a longer one folds)."""
    from rich.cells import cell_len

    if not column.wrap:
        return max([cell_len(column.header)] + [cell_len(c) for c in cells])
    longest = max([0] + [cell_len(c) for c in cells])
    return max([cell_len(column.header), min(column.least, longest)]
               + [min(cell_len(w), WORD) for c in cells for w in c.split()])


def _table(columns, rows, shown, widths, title, caption, width):
    from rich import box
    from rich.table import Table

    from rich.console import Group
    from rich.text import Text

    hidden = [c.header for i, c in enumerate(columns) if i not in shown]
    if hidden:
        note = (f"not shown at {width} columns: {', '.join(hidden)} (a wider terminal or "
                "--json shows them)")
        caption = f"{caption}; {note}" if caption else note
    table = Table(box=box.SIMPLE_HEAD)
    for i in shown:
        c = columns[i]
        table.add_column(c.header, justify=c.justify, no_wrap=not c.wrap,
                         overflow="fold", width=widths[i])
    for row in rows:
        table.add_row(*[row[i] for i in shown])
    # title and caption as text that wraps at words (a table's own are cut at its width)
    parts = [Text(title, style="bold")] if title else []
    return Group(*parts, table, *([Text(caption)] if caption else []))
