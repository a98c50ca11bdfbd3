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
from .paths import CONVERTED, SPARSITY_FILE
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
    """Make `out_dir/model.json` for one model entry; convert or download first where needed.

    model.json names where the weights are without a machine's absolute paths: a converted
    checkpoint and a local source the config names relatively are relative to model.json itself
    (an absolute source path stays as written), a hub source is its id and revision (found again in
    the hub cache). So the same config gives the same bytes in any clone on any machine.
    """
    out_dir = Path(out_dir)
    source = entry["source"]
    info: dict = {"name": name, "source": source, "entry": {k: entry[k] for k in OUTPUT_FIELDS}}
    if "path" in source:
        path = Path(source["path"]).expanduser()
        if not (path / "config.json").exists():
            raise InputError(f"config.models.{name}.source.path: {path} is not a model directory (no config.json)")
        out_dir.mkdir(parents=True, exist_ok=True)
        located = str(path) if path.is_absolute() else os.path.relpath(path.resolve(), out_dir.resolve())
        info.update(path=located, revision=f"sha256:{sha256_path(path)}")
    elif "hub" in source:
        _hub_snapshot(source, local_only=False)
        info["revision"] = source["revision"]
    else:
        checkpoint = out_dir / CONVERTED
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".gguf.") as tmp:
            gguf = join_gguf(source["gguf"]["parts"], source["gguf"]["sha256"], Path(tmp) / "model.gguf")
            with atomic_dir(checkpoint) as staging:
                convert_gguf(gguf, staging, entry["dtype"])
        info.update(checkpoint=CONVERTED, revision=f"gguf-sha256:{source['gguf']['sha256']}")
    info["provenance"] = provenance(model={"name": name, "revision": info["revision"]})
    write_json(out_dir / "model.json", info)
    return info


HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.py"]


def _hub_snapshot(source: dict, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source["hub"], revision=source["revision"], allow_patterns=HUB_PATTERNS,
                                  local_files_only=local_only))


def _read_model_json(path: Path) -> dict:
    info = read_json(path)
    if not isinstance(info, dict) or not {"name", "source", "entry"} <= info.keys():
        raise InputError(f"{path}: not a prepared model.json (needs name, source and entry; "
                         f"`prunebench prepare-model` writes one)")
    return info


def model_dir(model: str | os.PathLike) -> Path:
    """The loadable directory behind a CLI `--model` argument: a model.json or a checkpoint directory."""
    path = Path(model)
    if path.is_file() and path.suffix == ".json":
        info = _read_model_json(path)
        home = path.resolve().parent  # a verify rerun reads the recorded model.json through a link
        if "checkpoint" in info:
            return home / info["checkpoint"]
        if "hub" in info["source"]:
            return _hub_snapshot(info["source"], local_only=True)
        return home / info["path"]  # an absolute path stays itself
    if (path / "config.json").exists() or (path / SPARSITY_FILE).exists():  # a checkpoint, or a skipped cell
        return path
    raise InputError(f"--model {model}: neither a prepared model.json nor a model directory with config.json")


CPU_KV_CACHE_GIB = 2  # vLLM's CPU build's KV cache, unless VLLM_CPU_KVCACHE_SPACE says otherwise


def vllm_cpu_arguments() -> dict:
    """On vLLM's CPU build: a KV cache of a fixed size, since its default reserves 92% of the
    machine's memory (`gpu_memory_utilization`) and refuses to start where other jobs hold some;
    and eager execution, since its compiled warm-up takes minutes on two cores, longer than a check
    of a small model runs (the build is here to check the vLLM paths, not to serve)."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {}
    kv_cache = {} if os.environ.get("VLLM_CPU_KVCACHE_SPACE") else {"kv_cache_memory_bytes": CPU_KV_CACHE_GIB << 30}
    return {"enforce_eager": True, **kv_cache}


def require_vllm_servable(model: str | os.PathLike) -> None:
    """Refuse, before vLLM loads anything, a checkpoint of an architecture vLLM does not serve (a
    SliceGPT model's residual shortcuts, an LLM-Pruner model's per-layer widths, a dynamic model's
    routers): such a model is
    evaluated with the hf backend."""
    from .architectures import PRUNEBENCH_MODEL_TYPES

    config = model_dir(model) / "config.json"
    model_type = read_json(config).get("model_type") if config.exists() else None
    if model_type in PRUNEBENCH_MODEL_TYPES:
        raise InputError(f"{config}: model_type {model_type!r} is prunebench's own architecture, which vLLM "
                         "does not serve; evaluate this model with backend: hf")


def model_info(model: str | os.PathLike) -> dict:
    """What a model argument is: name, revision, its entry, and the pruning method if pruned.

    A prepared model.json describes itself; a pruned checkpoint carries its base model's
    description in sparsity.json; a bare directory gets the schema's defaults for its entry.
    """
    path = Path(model)
    if path.is_file() and path.suffix == ".json":
        info = _read_model_json(path)
        return {"name": info["name"], "revision": info.get("revision"), "entry": info["entry"]}
    if (path / SPARSITY_FILE).exists():
        meta = read_json(path / SPARSITY_FILE)
        return {**meta["model"], "pruned": meta["method"], **({"skipped": meta["skipped"]} if "skipped" in meta else {})}
    if (path / "config.json").exists():
        return {"name": path.name, "revision": f"sha256:{sha256_path(path)}", "entry": default_entry()}
    raise InputError(f"--model {model}: neither a prepared model.json nor a model directory with config.json")


def model_identity(info: dict) -> dict:
    """What a result records of its model: name, revision and pruning method; no machine's paths."""
    return {k: info[k] for k in ("name", "revision", "pruned", "skipped") if k in info}


def model_limits(model: str | os.PathLike) -> tuple[int | None, int]:
    """(positions, embedding rows) of a model from its config alone: the longest sequence it was
    built for (learned position tables end there; rotary models go out of distribution beyond it),
    and how many token ids its input embedding holds (which may exceed the tokenizer's vocabulary)."""
    from transformers import AutoConfig

    from . import architectures  # noqa: F401  (prunebench's own model types)

    directory = model_dir(model)
    try:
        config = AutoConfig.from_pretrained(str(directory)).get_text_config()
    except (OSError, ValueError) as err:
        raise InputError(f"{directory / 'config.json'}: cannot read the model config: {err}") from None
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return positions, config.vocab_size


def default_entry() -> dict:
    """The schema's defaults for a model entry, for a model directory given without a config."""
    from .config import validate

    config = validate({"models": {"m": {"source": {"path": "."}}}}, "defaults")
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
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    from . import architectures  # noqa: F401  (prunebench's own model types)

    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype}: expected one of {', '.join(sorted(DTYPES))}")
    directory = model_dir(model)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(directory), dtype=getattr(torch, dtype),
                                                      attn_implementation="sdpa")
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{directory}: cannot load the model ({first})") from None
    return loaded.to(pick_device(device)).eval()


def empty_model(model: str | os.PathLike):
    """The model's modules without its weights (on the meta device, built from its config alone):
    what a check of its layout needs, in a second or so. None where the config cannot be
    built so (the check then runs on the loaded model)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from . import architectures  # noqa: F401  (prunebench's own model types)

    try:
        config = AutoConfig.from_pretrained(str(model_dir(model)))
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    except (OSError, ValueError, RuntimeError, TypeError, KeyError):
        return None


def copy_tokenizer_files(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Tokenizer and generation config files of a checkpoint, for a pruned copy of it."""
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                 "generation_config.json", "tokenizer.model", "vocab.json", "merges.txt"):
        if (Path(src) / name).exists():
            shutil.copy2(Path(src) / name, Path(dst) / name)
