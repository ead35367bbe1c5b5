"""The package layout: one installed top-level name, every folder in the wheel, small modules."""

from __future__ import annotations

import tomllib

from tests.support.paths import ROOT

FOLDERS = {"config": "onward.config", "tasks": "onward.tasks", "flows": "onward.flows"}
FOLDERS["deployments"] = "onward.deployments"
MAX_LINES = 520


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_folders() -> set[str]:
    names = set()
    for folder, package in FOLDERS.items():
        for path in [ROOT / folder, *(ROOT / folder).rglob("*")]:
            if not path.is_dir() or path.name == "__pycache__":
                continue
            if any(p.is_file() for p in path.iterdir()):
                relative = path.relative_to(ROOT / folder).parts
                names.add(".".join((package, *relative)))
    return names


def test_every_folder_is_a_listed_package() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]  # type: ignore[index]
    listed = set(setuptools["packages"])
    assert listed == _package_folders()
    assert {name.split(".")[0] for name in listed} == {"onward"}
    assert set(setuptools["package-dir"].values()) == set(FOLDERS)


def test_no_module_is_too_long() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
