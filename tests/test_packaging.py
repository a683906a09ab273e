"""What a regular (non-editable) install ships: every file the packages read at run time."""

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "monitor", "reconcile", "acuse", "migrations")
# Inputs of `make catalogs`, not read by acuse at run time.
BUILD_ONLY = {"config/locale/acuse.pot"}


def shipped_globs() -> dict[str, list[str]]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs: dict[str, list[str]] = pyproject["tool"]["setuptools"]["package-data"]
    return globs


def data_files() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and path.suffix not in {".py", ".pyc"}:
                found.append(path.relative_to(ROOT).as_posix())
    return sorted(set(found) - BUILD_ONLY)


def test_package_data_lists_every_file() -> None:
    globs = shipped_globs()
    missing = []
    for name in data_files():
        package, _, inside = name.partition("/")
        if not any(fnmatch.fnmatch(inside, glob) for glob in globs.get(package, [])):
            missing.append(name)
    assert missing == [], f"add these to [tool.setuptools.package-data]: {missing}"


def test_package_data_ships_provider_profile() -> None:
    assert "config/providers/lleida.toml" in data_files()
