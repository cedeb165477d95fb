"""The submissions a `grade` command names: each PATH a `.py` or `.ipynb` file, or a folder of them, one
submission per file or per subfolder holding one such file (Gradescope's and most LMS exports' layout).

    folder/alice.py              -> "alice"
    folder/bob/homework.ipynb    -> "bob"
    folder/carol/ (two sources)  -> "carol", an error row: which file is the submission?

Not for: reading a submission's code (nets/submission_source.py) or checking it (grader.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mnist_compare.nets.submission_source import SOURCE_SUFFIXES


@dataclass(frozen=True)
class Submission:
    """One student's work: its name in the grade sheet, its file (None when the folder has no single one),
    and why it cannot be graded when it cannot."""

    name: str
    path: Path | None
    problem: str = ""


def is_source(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SOURCE_SUFFIXES and not path.name.startswith(".")


def submissions_in(paths: list[str]) -> list[Submission]:
    """Every submission the paths name, sorted by name; a name given twice is kept once."""
    found: dict[str, Submission] = {}
    for text in paths:
        path = Path(text).expanduser()
        entries = [from_file(path)] if path.is_file() else from_folder(path)
        for entry in entries:
            found.setdefault(entry.name, entry)
    return sorted(found.values(), key=lambda s: s.name)


def from_file(path: Path) -> Submission:
    if not is_source(path):
        return Submission(path.name, None, f"{path.name}: not a .py or .ipynb file")
    return Submission(path.stem, path)


def from_folder(folder: Path) -> list[Submission]:
    """One submission per source file directly in `folder`, and one per subfolder (its single source file,
    searched at any depth below it; Jupyter's .ipynb_checkpoints are skipped)."""
    entries = [Submission(p.stem, p) for p in sorted(folder.iterdir()) if is_source(p)]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        sources = [p for p in sorted(sub.rglob("*")) if is_source(p) and ".ipynb_checkpoints" not in p.parts]
        if len(sources) == 1:
            entries.append(Submission(sub.name, sources[0]))
        else:
            what = "no .py or .ipynb file" if not sources else \
                f"{len(sources)} source files ({', '.join(p.name for p in sources[:4])}): one submission is one file"
            entries.append(Submission(sub.name, None, f"{sub.name}/: {what}"))
    return entries
