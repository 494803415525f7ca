"""Where the user's campusllm configuration file lives.

``$CAMPUSLLM_CONFIG`` wins; otherwise ``$XDG_CONFIG_HOME/campusllm/config.toml`` (default
``~/.config/campusllm/config.toml``), or ``%APPDATA%\\campusllm\\config.toml`` on Windows.
A missing file is not an error: the packaged catalog is used as it is.

Example:
    >>> import os
    >>> from campusllm.config import config_path
    >>> os.environ["CAMPUSLLM_CONFIG"] = "/tmp/my-campusllm.toml"
    >>> str(config_path())
    '/tmp/my-campusllm.toml'
    >>> del os.environ["CAMPUSLLM_CONFIG"]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["CONFIG_ENV", "config_path"]

CONFIG_ENV = "CAMPUSLLM_CONFIG"


def config_path() -> Path:
    """Path of the user configuration file (it may not exist).

    Example:
        >>> config_path().name
        'config.toml'
    """
    explicit = os.environ.get(CONFIG_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    if xdg:
        base = Path(xdg).expanduser()
    elif sys.platform == "win32" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"])
    else:
        base = Path.home() / ".config"
    return base / "campusllm" / "config.toml"
