"""Optional parts of campusllm and the extras that install them.

The core needs only httpx and pydantic; each framework adapter needs its framework, which
comes with an extra (``campusllm[langchain]``, ``campusllm[llamaindex]``). An adapter checks
for its modules when it is imported, so a missing one is named together with the install line
that brings it, instead of surfacing as a bare ``ModuleNotFoundError`` deep in a traceback.

Example:
    >>> require_extra("langchain_campusllm", "langchain", ["json"])  # present: no error
    >>> try:
    ...     require_extra("my_adapter", "demo", ["no_such_module_here"])
    ... except ImportError as e:
    ...     print(str(e).split(". ")[0])
    my_adapter needs 'no_such_module_here', which is not installed
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from .i18n import tr

__all__ = ["installed", "require_extra", "install_line"]


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (checked without importing it).

    Example:
        >>> installed("json"), installed("no_such_module_here")
        (True, False)
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):  # a dotted name whose parent is missing
        return False


def require_extra(package: str, extra: str, modules: Iterable[str]) -> None:
    """Raise ImportError naming the first missing module and the extra that installs it."""
    for module in modules:
        if not installed(module):
            raise ImportError(
                tr(
                    f"{package} needs {module!r}, which is not installed. Install the extra: "
                    f"{install_line(extra)}",
                    f"{package} 需要 {module!r},但它没有安装。请安装扩展:{install_line(extra)}",
                ),
                name=module,
            )


def install_line(extra: str) -> str:
    """The command that installs ``extra`` (pip, and uv for uv projects).

    Example:
        >>> install_line("langchain")
        'pip install "campusllm[langchain]" (uv: uv add "campusllm[langchain]")'
    """
    return f'pip install "campusllm[{extra}]" (uv: uv add "campusllm[{extra}]")'
