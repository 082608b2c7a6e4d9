"""Tracebacks as a user reads them: starting at the user's own frame.

Every job's traceback begins in kinetik's code (the worker's ``perform``, the
middleware that calls the task) before it reaches the task. Those frames are
the same in every traceback and say nothing about the error, so the job page
folds them into one line; the raw traceback stays on the page beside it.
"""

from __future__ import annotations

import re

#: a frame line of Python's traceback format; the source and caret lines below it are indented deeper
_FRAME = re.compile(r'^  File "(?P<path>[^"]*)", line \d+, in ')
#: a path inside the django_kinetik package, wherever it is installed (the worker's host may differ)
_KINETIK = re.compile(r"[/\\]django_kinetik[/\\]")


def fold_kinetik_frames(text: str) -> tuple[str, int]:
    """``text`` with each traceback's leading kinetik frames folded away, and how many were.

    Only frames before the first frame of other code go: kinetik frames the
    user's code called into (``job.progress()``...) stay, as does every frame
    of a traceback that never leaves kinetik.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    folded_total = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        if not line.startswith("Traceback (most recent call last):"):
            continue
        frames: list[tuple[str, list[str]]] = []
        while index < len(lines) and (match := _FRAME.match(lines[index])):
            frame = [lines[index]]
            index += 1
            while index < len(lines) and lines[index].startswith("    "):
                frame.append(lines[index])
                index += 1
            frames.append((match["path"], frame))
        leading = 0
        while leading < len(frames) and _KINETIK.search(frames[leading][0]):
            leading += 1
        if leading == len(frames):
            leading = 0
        if leading:
            out.append(f"  [{leading} frame{'s' if leading != 1 else ''} in django_kinetik folded]\n")
            folded_total += leading
        for _, frame in frames[leading:]:
            out.extend(frame)
    return "".join(out), folded_total
