"""What a Dask cluster needs of a user's net before its jobs can unpickle it: the net's source under the
module name it was loaded as here, and the helper modules it imported from its own directory.

    net.py:Net                      -> user_net_net.py  (the source; a notebook's definitions, not its JSON)
    import helpers   (beside it)    -> helpers.py
    import mylib.layers (beside it) -> mylib.zip         (a package travels as a zip on the workers' path)

Dask's upload_file sends each to the scheduler and every worker, present and future; helpers go first, since
the net imports them when it loads there. A net from an importable module (package.module:CLASS) must be
installed on the cluster like this package; a job that cannot import a module names it (missing_module).
Not for: running the jobs (cluster.py).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from mnist_compare.nets.submission_source import source_text
from mnist_compare.nets.user_net import USER_MODULE_PREFIX
from mnist_compare.records.spec import RunSpec

NOT_SHIPPED = ("mnist_compare", USER_MODULE_PREFIX)  # installed on the cluster / shipped as the net itself
MISSING_MODULE = re.compile(r"No module named '([^']+)'")


def ship_user_nets(client: Any, specs: list[RunSpec]) -> None:
    """Upload every --net_type PATH.py:CLASS net's source, after the helper modules it imported from its
    directory, to the scheduler and every worker."""
    for module in {sys.modules.get(spec.net.__module__) for spec in specs}:
        path = getattr(module, "__file__", None)
        if module is None or not module.__name__.startswith(USER_MODULE_PREFIX) or not path:
            continue
        with tempfile.TemporaryDirectory() as directory:
            for helper in helper_files(Path(path), Path(directory)):
                client.upload_file(str(helper))
            copy = Path(directory) / f"{module.__name__}.py"
            copy.write_text(source_text(Path(path)), encoding="utf-8")
            client.upload_file(str(copy))


def helper_files(net_file: Path, staging: Path) -> list[Path]:
    """The modules loaded from the net file's directory (its helpers), staged in `staging` for upload: a
    top-level module as its .py, a package as a .zip of its directory."""
    home = net_file.resolve().parent
    staged: dict[str, Path] = {}
    for name, module in list(sys.modules.items()):
        top = name.split(".")[0]
        source = getattr(module, "__file__", None)
        if top in staged or top.startswith(NOT_SHIPPED) or not source or Path(source).resolve() == net_file.resolve():
            continue
        try:
            relative = Path(source).resolve().relative_to(home)
        except ValueError:
            continue
        if "site-packages" in relative.parts or "dist-packages" in relative.parts:  # a virtualenv beside the net
            continue
        if len(relative.parts) == 1:
            staged[top] = Path(shutil.copyfile(home / relative, staging / relative.name))
        else:
            staged[top] = Path(shutil.make_archive(str(staging / top), "zip", root_dir=home, base_dir=top))
    return list(staged.values())


def missing_module(err: BaseException) -> str | None:
    """The module a job could not import, from its error or the errors that caused it (Dask wraps the
    worker's or scheduler's ModuleNotFoundError in its own); None when it is not that error."""
    text = "".join(traceback.format_exception(err))
    found = MISSING_MODULE.search(text)
    return found.group(1) if found else None
