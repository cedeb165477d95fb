"""A submission's source as Python, read without running it: a `.py` file as it is, a Jupyter notebook as its
definitions only, and the class to check found by reading, not importing.

From a notebook (read with nbformat) only what defines things is kept: imports, functions, classes and
UPPER_CASE constants, from code cells whose IPython magics (`%...`, `%%...` cells) and shell lines (`!...`)
are dropped; so a student's training cell, however long, never runs.

    SOURCE = definitions(path)                   # the text to compile
    name = train_on_batch_class(path, None)      # the one class that defines train_on_batch

Not for: running the code (user_net.py loads it; check/sandbox.py does so in a process of its own).
"""

from __future__ import annotations

import ast
from pathlib import Path

from mnist_compare.system.reading import MIB, FileRefused, read_text

NOTEBOOK_SUFFIX = ".ipynb"
SOURCE_LIMIT = 16 * MIB  # a net file; a notebook may carry its outputs' images too
NOTEBOOK_LIMIT = 64 * MIB
SOURCE_SUFFIXES = (".py", NOTEBOOK_SUFFIX)
DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class SubmissionError(ValueError):
    """A submission that cannot be read as one: the message is one line, in words."""


def source_text(path: Path) -> str:
    """The Python text of a `.py` file, or of a notebook's definitions."""
    if path.suffix.lower() == NOTEBOOK_SUFFIX:
        return definitions(path)
    return guarded_text(path, SOURCE_LIMIT)


def guarded_text(path: Path, limit: int) -> str:
    """The file's UTF-8 text by the guarded reader (no FIFO, device or directory; at most `limit` bytes)."""
    try:
        return read_text(path, "the submission", limit)
    except FileRefused as err:
        raise SubmissionError(str(err)) from None


def definitions(path: Path) -> str:
    """The definitions of the notebook at `path`, cell after cell, as one Python text."""
    import nbformat

    text = guarded_text(path, NOTEBOOK_LIMIT)
    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat raises JSON, validation and OS errors of many kinds
        raise SubmissionError(f"{path.name}: not a readable notebook ({err.__class__.__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else 'empty'})") from None
    kept = []
    for number, cell in enumerate(notebook.cells, 1):
        if cell.get("cell_type") != "code":
            continue
        code = without_magics(str(cell.get("source", "")))
        try:
            tree = ast.parse(code, filename=f"{path.name}, cell {number}")
        except SyntaxError as err:
            raise SubmissionError(f"{path.name}: cell {number} is not valid Python (line {err.lineno}: "
                                  f"{err.msg})") from None
        lines = code.splitlines()
        kept += ["\n".join(lines[first_line(node) - 1:node.end_lineno]) for node in tree.body if is_definition(node)]
    return "\n\n".join(kept) + "\n"


def first_line(node: ast.stmt) -> int:
    """The 1-based line a statement starts on, its decorators included."""
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])


def without_magics(code: str) -> str:
    """A cell's code without IPython's magics and shell lines: a `%%` cell is dropped whole, a `%` or `!` line
    becomes `pass` (so that a block it stood in keeps a body)."""
    if code.lstrip().startswith("%%"):
        return ""
    lines = []
    for line in code.splitlines():
        stripped = line.lstrip()
        indent = line[:len(line) - len(stripped)]
        lines.append(f"{indent}pass" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def is_definition(node: ast.stmt) -> bool:
    """An import, a function, a class, or an assignment to UPPER_CASE names only."""
    if isinstance(node, DEFINITIONS):
        return True
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
        else []
    names = [t for target in targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
    return bool(names) and all(isinstance(t, ast.Name) and t.id.isupper() for t in names)


def train_on_batch_class(path: Path, wanted: str | None) -> str:
    """The class to check in the submission at `path`: `wanted` when given (it must be defined there), else
    the one top-level class that defines train_on_batch. Read, never run."""
    text = source_text(path)
    try:
        tree = ast.parse(text, filename=path.name)
    except SyntaxError as err:
        raise SubmissionError(f"{path.name}: line {err.lineno} is not valid Python ({err.msg})") from None
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    if wanted is not None:
        if wanted not in {c.name for c in classes}:
            raise SubmissionError(f"{path.name}: no class {wanted}; it defines "
                                  f"{', '.join(c.name for c in classes) or 'no class'}")
        return wanted
    nets = [c.name for c in classes if any(isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                                            and f.name == "train_on_batch" for f in c.body)]
    if len(nets) == 1:
        return nets[0]
    if not nets:
        return_line = f"it defines {', '.join(c.name for c in classes)}" if classes else "it defines no class"
        raise SubmissionError(f"{path.name}: no class defines train_on_batch ({return_line})")
    raise SubmissionError(f"{path.name}: {len(nets)} classes define train_on_batch ({', '.join(nets)}): name one "
                          "with --net_class")
