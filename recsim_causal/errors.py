"""Exceptions as the one line that ends a command.

A mistake in config, data, the file system or memory size is one ``error:`` line and exit 2;
an error raised inside user code (a policy, a mechanism, a callback) keeps its traceback and is
exit 1 (see :func:`failure`). The console commands and the Hydra callbacks report through here.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
import traceback
from pathlib import Path
from typing import Any

__all__ = ["failure", "one_line"]


def one_line(e: BaseException) -> str:
    """The first line of ``e``'s message (its class name when it has none)."""
    return str(e).splitlines()[0] if str(e).strip() else type(e).__name__


def _config_error_line(e: BaseException) -> str:
    """A Hydra, OmegaConf or YAML error as one line: its message's lines joined, the config
    search path dropped, the options Hydra lists kept (``agent: ... (available: a, b)``), and
    the cause (OmegaConf's ``Key 'stepz' is not in struct``) appended."""
    head, options, listing = [], [], False
    for line in str(e).splitlines():
        text = line.strip()
        if not text or text.startswith("Config search path") or text.startswith("provider="):
            continue
        if text.startswith("Available options"):
            listing = True
            continue
        (options if listing and line.startswith(("\t", " ")) else head).append(text)
    msg = " ".join(head) or type(e).__name__
    if options:
        msg += f" (available: {', '.join(options)})"
    cause = e.__cause__
    if cause is not None and str(cause).strip():
        msg += f": {one_line(cause)}"
    return msg


# recsim_causal's own source folders (agents/ and envs/ install under it from folders of their
# own), found without importing the subpackages (gymnasium is not needed for a report).
_OURS = tuple(str(Path(p).resolve()) for name in ("recsim_causal", "recsim_causal.agents", "recsim_causal.envs")
              for p in importlib.util.find_spec(name).submodule_search_locations)


_LIBRARIES = tuple(str(Path(sysconfig.get_paths()[k]).resolve()) for k in ("stdlib", "purelib", "platlib"))


def _frame_file(frame: Any) -> str:
    """The file a frame's code comes from; for compiled code (Cython's ``pyarrow/table.pxi``,
    a relative name) the file of the module it runs in."""
    filename = frame.f_code.co_filename
    if not os.path.isabs(filename):
        module = sys.modules.get(str(frame.f_globals.get("__name__", "")))
        filename = getattr(module, "__file__", None) or filename
    return str(Path(filename).resolve())


def _raised_in_user_code(e: BaseException) -> str | None:
    """Where ``e`` was raised (``Class.method at file:line``) when the innermost frame that is
    neither recsim_causal's nor an installed library's is user code (a policy, a mechanism,
    a callback); None when it is recsim_causal's own (a config or input check)."""
    tb, last = e.__traceback__, None
    while tb is not None:
        filename = _frame_file(tb.tb_frame)
        if filename.startswith(_OURS):
            last = None
        elif not filename.startswith(_LIBRARIES):
            last = tb
        tb = tb.tb_next
    if last is None:
        return None
    code, owner = last.tb_frame.f_code, last.tb_frame.f_locals.get("self")
    name = f"{type(owner).__name__}.{code.co_name}" if owner is not None else code.co_name
    return f"{name} at {code.co_filename}:{last.tb_lineno}"


def _config_errors() -> tuple[type[BaseException], ...]:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    return HydraException, OmegaConfBaseException, YAMLError


def failure(e: BaseException) -> tuple[int, str]:
    """(exit code, the ``error:`` line) for an exception that ends a command.

    A config, data, file-system or memory mistake is exit 2: ValueError, TypeError and KeyError
    raised by recsim_causal's own checks, a Hydra/OmegaConf/YAML error, an OSError (a missing,
    unreadable or unwritable file, a full disk), a size that cannot fit in memory. An exception
    raised inside user code (a policy, a mechanism, a callback) is exit 1; its traceback is
    printed here, before the line that names where it came from.
    """
    where = _raised_in_user_code(e)
    if where is not None and not isinstance(e, MemoryError):
        traceback.print_exception(e)
        return 1, f"error: {type(e).__name__} raised in user code ({where})"
    if isinstance(e, MemoryError):
        return 2, f"error: out of memory: {one_line(e)}"
    if isinstance(e, _config_errors()):
        return 2, f"error: {_config_error_line(e)}"
    if isinstance(e, FileNotFoundError) and e.filename:
        return 2, f"error: file not found: {e.filename}"
    if isinstance(e, OSError) and e.filename:
        return 2, f"error: {e.filename}: {e.strerror or one_line(e)}"
    if isinstance(e, (ValueError, TypeError, KeyError, OSError)):
        return 2, f"error: {one_line(e)}"
    traceback.print_exception(e)
    return 1, f"error: {type(e).__name__}: {one_line(e)}"
