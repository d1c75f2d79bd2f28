"""What a function's process sees, as on Lambda: the runtime's interpreter and libraries, its layers.

Lambda runs a Python function with the runtime's interpreter, its deployment package in
`/var/task`, each layer's `python/` folder under `/opt`, and the SDK the runtime includes
(docs/decisions/0028-functions-run-as-lambda-runs-them.md). Here: the interpreter the `Runtime`
names when the machine has it (pyenv, then PATH), else this one with a note; the runtime's
libraries and each layer installed once per machine from PyPI into a folder of the machine cache,
keyed by what they hold. The worker starts isolated (`python -I -S`): nothing of the project's
virtualenv or of the interpreter's own site-packages is on its path.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess  # nosec B404 # runs pip with a fixed argv, never a shell
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rehearsal.base.aws import (
    LAMBDA_PYTHON_RUNTIME_LIBRARIES,
    POWERTOOLS_LAYER_EXTRA_LIBRARIES,
)
from rehearsal.base.errors import UserError

_POWERTOOLS_PARAMETER = re.compile(
    r"^\{\{resolve:ssm:/aws/service/powertools/python/(?P<arch>[^/]+)/(?P<python>python3\.\d+)/"
    r"(?P<version>\d+\.\d+\.\d+)\}\}$"
)
_PYTHON_RUNTIME = re.compile(r"^python(?P<version>3\.\d+)$")


@dataclass(frozen=True, kw_only=True)
class Interpreter:
    """The interpreter a runtime's workers run under, and why it is that one."""

    path: Path
    version: str  # "3.13"
    exact: bool  # the one the template's Runtime names
    note: str | None = None  # set when it is not


@dataclass(frozen=True, kw_only=True)
class Sandbox:
    """Everything one function's worker needs besides its code: interpreter and library folders."""

    interpreter: Interpreter
    layers: tuple[Path, ...]  # after the code folder, each layer's folders in the order the function lists
    runtime_libraries: tuple[Path, ...]  # what the runtime includes (boto3), after the standard library


def runtime_version(runtime: str) -> str:
    """`python3.13` -> `3.13`; any other runtime is refused with one line."""
    match = _PYTHON_RUNTIME.match(runtime)
    if match is None:
        raise UserError(f"Runtime {runtime} cannot run locally: only python3.x runtimes are emulated")
    return match["version"]


def find_interpreter(
    runtime: str, *, search_path: str | None = None, pyenv_root: Path | None = None
) -> Interpreter:
    """The interpreter `runtime` names: in pyenv, else on PATH; else this one, with a note saying so."""
    version = runtime_version(runtime)
    root = (
        pyenv_root if pyenv_root is not None else Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    )
    candidates = sorted(
        root.glob(f"versions/{version}.*/bin/python{version}"), key=_patch_level, reverse=True
    )
    found = str(candidates[0]) if candidates else shutil.which(f"python{version}", path=search_path)
    if found is not None and "/shims/" in found:  # a pyenv shim fails unless that version is selected
        found = None
    if found is not None:
        return Interpreter(path=Path(found), version=version, exact=True)
    own = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Interpreter(
        path=Path(sys.executable),
        version=own,
        exact=own == version,
        note=None if own == version else f"{runtime}: {_missing(version, own)}",
    )


def _patch_level(path: Path) -> int:
    """3 for `.../versions/3.13.3/bin/python3.13`; the newest patch release is preferred."""
    patch = path.parent.parent.name.rpartition(".")[2]
    return int(patch) if patch.isdigit() else -1


def _missing(version: str, own: str) -> str:
    return f"python{version} is not on PATH or in pyenv; functions run under python{own} instead"


def layer_requirements(layer: str) -> tuple[str, ...]:
    """The pip requirements that rebuild a public layer; a layer that cannot be rebuilt is refused."""
    match = _POWERTOOLS_PARAMETER.match(layer)
    if match is None:
        raise UserError(
            f"layer {layer} cannot be loaded locally: only the Powertools public SSM parameter "
            "{{resolve:ssm:/aws/service/powertools/python/<arch>/<python>/<version>}} is emulated"
        )
    return (f"aws-lambda-powertools=={match['version']}", *POWERTOOLS_LAYER_EXTRA_LIBRARIES)


def machine_cache() -> Path:
    """Where installed layers and runtime libraries are kept across runs and repositories."""
    override = os.environ.get("REHEARSAL_CACHE")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rehearsal"


def install_folder(
    kind: str, requirements: tuple[str, ...], interpreter: Interpreter, *, cache: Path, subfolder: str = ""
) -> Path:
    """`requirements` installed for `interpreter` into `<cache>/<kind>/<key>/<subfolder>`, once per machine.

    A second call finds the folder and returns at once. Installs into a private folder and renames
    it into place, so two runs installing the same folder at once never see half of it.
    """
    digest = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:12]
    key = f"{requirements[0].replace('==', '-')}-py{interpreter.version}-{digest}"
    final = cache / kind / key
    if not (final / ".complete").exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
        try:
            _pip_install(interpreter, requirements, staging / subfolder if subfolder else staging)
        except UserError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        (staging / ".complete").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        try:
            staging.rename(final)
        except OSError:  # another run put it there first
            shutil.rmtree(staging, ignore_errors=True)
    return final


def _pip_install(interpreter: Interpreter, requirements: tuple[str, ...], target: Path) -> None:
    command = [
        str(interpreter.path), "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
        "--target", str(target), *requirements,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # nosec B603
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"installing {' '.join(requirements)} for python{interpreter.version} failed ({last}); "
            f"check that {interpreter.path} has pip and that PyPI or the pip cache is reachable"
        )


class SandboxFactory:
    """Builds (and caches in memory) the sandbox of each runtime and layer list."""

    def __init__(self, *, cache: Path | None = None) -> None:
        self.cache = cache or machine_cache()
        self._interpreters: dict[str, Interpreter] = {}
        self._built: dict[tuple[str, tuple[str, ...]], Sandbox] = {}

    def interpreter(self, runtime: str) -> Interpreter:
        if runtime not in self._interpreters:
            self._interpreters[runtime] = find_interpreter(runtime)
        return self._interpreters[runtime]

    def sandbox(self, runtime: str, layers: tuple[str, ...]) -> Sandbox:
        key = (runtime, layers)
        if key not in self._built:
            interpreter = self.interpreter(runtime)
            paths: list[Path] = []
            for layer in layers:
                folder = install_folder(
                    "layers", layer_requirements(layer), interpreter, cache=self.cache, subfolder="python"
                )
                paths += [folder / "python" / "lib" / f"python{interpreter.version}" / "site-packages"]
                paths += [folder / "python"]
            runtime_folder = install_folder(
                "runtime", LAMBDA_PYTHON_RUNTIME_LIBRARIES, interpreter, cache=self.cache
            )
            self._built[key] = Sandbox(
                interpreter=interpreter, layers=tuple(paths), runtime_libraries=(runtime_folder,)
            )
        return self._built[key]
