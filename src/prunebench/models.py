"""Model sources (local directory, hub, GGUF parts in Python packages) and loading.

`prepare` turns a model entry into ``results/models/{name}/model.json``, which names a directory
that `from_pretrained` can load; every later stage loads models only through that file (or through
a pruned checkpoint directory), so no stage needs to know where a model came from.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .io import InputError, atomic_dir, read_json, write_json
from .provenance import provenance, sha256_path

log = logging.getLogger(__name__)
DTYPES = {"bfloat16", "float16", "float32"}
# Fields of a model entry that change what the model writes or how it is pruned; they travel with
# the model (model.json, and sparsity.json of a pruned copy) so later stages need no config.
OUTPUT_FIELDS = ("dtype", "chat_template", "system_prompt", "think", "response_prefix", "max_model_len", "layers",
                 "skip_modules")


def resolve_part(part: str) -> Path:
    """A GGUF part: a filesystem path, or `package/relative/path` inside an installed Python package."""
    path = Path(part).expanduser()
    if path.exists():
        return path
    package, _, rest = part.partition("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"model source gguf part {part!r}: no such file, and no installed package {package!r} "
                         f"(install the data wheels the config names)")
    candidate = Path(list(spec.submodule_search_locations)[0]) / rest
    if not candidate.exists():
        raise InputError(f"model source gguf part {part!r}: package {package!r} has no file {rest!r}")
    return candidate


def join_gguf(parts: list[str], sha256: str, out_path: Path) -> Path:
    """Concatenate the parts in order into `out_path`, refusing a result whose sha256 differs."""
    digest = hashlib.sha256()
    with open(out_path, "wb") as out:
        for part in parts:
            with open(resolve_part(part), "rb") as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != sha256:
        out_path.unlink(missing_ok=True)
        raise InputError(f"model source gguf: the joined file has sha256 {digest.hexdigest()}, expected {sha256}")
    return out_path


def convert_gguf(gguf_path: Path, out_dir: Path, dtype: str) -> None:
    """Load a GGUF with transformers (dequantized) and save it as a safetensors checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=getattr(torch, dtype))
    # A GGUF-loaded model refuses to serialize while it still carries its quantizer; its weights are
    # already dequantized nn.Linear tensors, so dropping the quantizer metadata is lossless.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def prepare(name: str, entry: dict, out_dir: str | os.PathLike) -> dict:
    """Make `out_dir/model.json` for one model entry; convert or download first where needed."""
    out_dir = Path(out_dir)
    source = entry["source"]
    info: dict = {"name": name, "source": source, "entry": {k: entry[k] for k in OUTPUT_FIELDS}}
    if "path" in source:
        path = Path(source["path"]).expanduser().resolve()
        if not (path / "config.json").exists():
            raise InputError(f"config.models.{name}.source.path: {path} is not a model directory (no config.json)")
        info.update(path=str(path), revision=f"sha256:{sha256_path(path)}")
    elif "hub" in source:
        from huggingface_hub import snapshot_download

        local = snapshot_download(source["hub"], revision=source["revision"],
                                  allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.py"])
        info.update(path=str(Path(local).resolve()), revision=source["revision"])
    else:
        checkpoint = out_dir / "checkpoint"
        with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
            gguf = join_gguf(source["gguf"]["parts"], source["gguf"]["sha256"], Path(tmp) / "model.gguf")
            with atomic_dir(checkpoint) as staging:
                convert_gguf(gguf, staging, entry["dtype"])
        info.update(path=str(checkpoint.resolve()), revision=f"gguf-sha256:{source['gguf']['sha256']}")
    info["provenance"] = provenance(model={"name": name, "revision": info["revision"]})
    write_json(out_dir / "model.json", info)
    return info


def model_dir(model: str | os.PathLike) -> Path:
    """The loadable directory behind a CLI `--model` argument: a model.json or a checkpoint directory."""
    path = Path(model)
    if path.is_file() and path.suffix == ".json":
        return Path(read_json(path)["path"])
    if (path / "config.json").exists():
        return path
    raise InputError(f"--model {model}: neither a prepared model.json nor a model directory with config.json")


def model_info(model: str | os.PathLike) -> dict:
    """What a model argument is: name, path, revision, its entry, and the pruning method if pruned.

    A prepared model.json describes itself; a pruned checkpoint carries its base model's
    description in sparsity.json; a bare directory gets the schema's defaults for its entry.
    """
    path = Path(model)
    if path.is_file() and path.suffix == ".json":
        info = read_json(path)
        return {"name": info["name"], "path": info["path"], "revision": info.get("revision"), "entry": info["entry"]}
    if (path / "sparsity.json").exists():
        meta = read_json(path / "sparsity.json")
        return {**meta["model"], "path": str(path), "pruned": meta["method"]}
    if (path / "config.json").exists():
        return {"name": path.name, "path": str(path), "revision": f"sha256:{sha256_path(path)}",
                "entry": default_entry()}
    raise InputError(f"--model {model}: neither a prepared model.json nor a model directory with config.json")


def default_entry() -> dict:
    """The schema's defaults for a model entry, for a model directory given without a config."""
    from .config import validate

    config = validate({"models": {"m": {"source": {"path": "."}}}}, "defaults", check_paths=False)
    return {k: config["models"]["m"][k] for k in OUTPUT_FIELDS}


def pick_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(model: str | os.PathLike):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir(model)))


def load_model(model: str | os.PathLike, dtype: str = "bfloat16", device: str | None = None):
    import torch
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype}: expected one of {', '.join(sorted(DTYPES))}")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir(model)), dtype=getattr(torch, dtype),
                                                 attn_implementation="sdpa")
    return model.to(pick_device(device)).eval()


def copy_tokenizer_files(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Tokenizer and generation config files of a checkpoint, for a pruned copy of it."""
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                 "generation_config.json", "tokenizer.model", "vocab.json", "merges.txt"):
        if (Path(src) / name).exists():
            shutil.copy2(Path(src) / name, Path(dst) / name)
