"""pyproject, the lock, the conda environment, the container recipes and the config's image tag
name the same versions: an image or environment built from any of them runs the same code."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from prunebench.config import validate

from .conftest import ROOT


def lock() -> dict[str, str]:
    pins = {}
    for number, line in enumerate((ROOT / "requirements.lock").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"requirements.lock:{number}: {line!r} is not pinned with =="
        pins[canonicalize_name(name)] = version.split(";")[0].split()[0]
    return pins


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def containerfile(kind: str) -> str:
    return (ROOT / "containers" / f"{kind}.Containerfile").read_text()


def test_every_pyproject_dependency_is_in_the_lock_at_a_version_it_allows():
    project = pyproject()["project"]
    pins = lock()
    extras = project["optional-dependencies"]
    for spec in project["dependencies"] + extras["test"] + extras["slurm"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is a dependency but not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (spec, pins[name])


def test_the_containers_install_the_lock_and_pin_what_they_add():
    pins = lock()
    cpu, gpu = containerfile("cpu"), containerfile("gpu")
    for recipe in (cpu, gpu):
        assert "COPY requirements.lock" in recipe and "requirements.lock" in recipe.split("RUN", 2)[-1]
    assert re.search(r"torch==([\w.+]+)", cpu).group(1) == pins["torch"]
    vllm_extra = Requirement(pyproject()["project"]["optional-dependencies"]["vllm"][0])
    assert re.search(r"vllm==([\w.]+)", gpu).group(1) == str(vllm_extra.specifier).lstrip("=")
    # the images' Python is Debian 12's, 3.11, the version the conda environment and pyproject name
    for recipe in (cpu, gpu):
        assert "debian:bookworm" in recipe and "python3 " in recipe


def test_the_conda_environment_uses_the_lock_and_the_same_python():
    env = yaml.safe_load((ROOT / "envs" / "prunebench.yaml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    requires = pyproject()["project"]["requires-python"]
    assert python == "python=3.11" and requires == ">=3.11"
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-r ../requirements.lock" in pip


def test_the_rules_name_images_of_this_release():
    config = validate({"models": {"m": {"source": {"path": "/nonexistent"}}}})
    assert config["containers"]["tag"] == pyproject()["project"]["version"]
    rules = "\n".join(p.read_text() for p in sorted((ROOT / "rules").glob("*.smk")))
    assert rules.count("conda:") == rules.count("container:") > 0
