"""Pruning core: method names, the three algorithms, the statistics and the sequential driver."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, Qwen2Config

from prunebench.pruning import METHODS, InputStatistic, PruneSpec, capture_inputs, parse_method, prune_model
from prunebench.pruning import driver, sparsegpt
from prunebench.pruning.magnitude import lowest_mask, row_lowest_mask

CONFIGS = {"qwen2": Qwen2Config, "llama": LlamaConfig}
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=128)
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Matrices here are tiny: a second thread only adds synchronisation, which costs seconds per call
    when another process keeps the other core busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(kind="qwen2", seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    config = CONFIGS[kind](**TINY)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype).eval()


def calibration(lengths=(5, 23, 11, 40), seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, TINY["vocab_size"], (n,), generator=generator) for n in lengths]


def quiet(message):
    pass


def linears(model):
    return {name: module for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and ".layers." in name}


# ---------------------------------------------------------------------------------------------- names

@pytest.mark.parametrize("name, expected", [
    ("sparsegpt-0.5", PruneSpec("sparsegpt", 0.5)),
    ("wanda-0.6", PruneSpec("wanda", 0.6)),
    ("magnitude-0.5", PruneSpec("magnitude", 0.5)),
    ("sparsegpt-2of4", PruneSpec("sparsegpt", None, 2, 4)),
    ("wanda-4of8", PruneSpec("wanda", None, 4, 8)),
    ("magnitude-1of4", PruneSpec("magnitude", None, 1, 4)),
])
def test_parse_method_accepts(name, expected):
    spec = parse_method(name)
    assert spec == expected
    assert spec.name == name
    assert parse_method(spec.name) == spec


@pytest.mark.parametrize("name", [
    "dense", "", "sparsegpt", "sparsegpt-", "foo-0.5", "owl-0.5", "sparsegpt-0", "sparsegpt-0.0", "sparsegpt-1",
    "sparsegpt-1.0", "wanda-1.5", "wanda--0.5", "wanda-4of4", "wanda-5of4", "wanda-0of4", "wanda-2:4",
    "wanda-2of4x", "sparsegpt_0.5", "Sparsegpt-0.5", "magnitude-50%",
])
def test_parse_method_rejects(name):
    with pytest.raises(ValueError):
        parse_method(name)


def test_spec_reports_target_and_pattern():
    assert parse_method("wanda-2of4").target == 0.5 and parse_method("wanda-2of4").pattern == "2:4"
    assert parse_method("wanda-1of4").target == 0.75
    assert parse_method("sparsegpt-0.6").target == 0.6 and parse_method("sparsegpt-0.6").pattern is None
    assert METHODS["sparsegpt"].needs == "hessian" and METHODS["wanda"].needs == "norms"
    assert METHODS["magnitude"].needs is None


# ------------------------------------------------------------------------------------ exact counts

@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("method", sorted(name for name, m in METHODS.items()  # layer allocations: tests/test_owl.py
                                           if m.family == "unstructured" and m.allocation is None))
@pytest.mark.parametrize("pattern", ["0.6", "2of4", "4of8"])
def test_exact_zero_counts(kind, method, pattern):
    model = tiny_model(kind)
    spec = parse_method(f"{method}-{pattern}")
    cal = calibration()
    before = {name: module.weight.detach().clone() for name, module in linears(model).items()}
    report = prune_model(model, cal, spec, blocksize=32, log=quiet)
    json.dumps(report)

    assert report["method"] == spec.name and report["pattern"] == spec.pattern
    assert report["calibration"] == {"sequences": 4, "tokens": 79}
    assert set(report["modules"]) == set(before) and len(before) == 2 * len(LINEARS)
    total_zeros = total = 0
    for name, module in linears(model).items():
        weight = module.weight.detach()
        rows, cols = weight.shape
        zero = weight == 0
        if spec.sparsity is None:
            groups = (~zero).reshape(rows, cols // spec.m, spec.m).sum(dim=2)
            assert int(groups.max()) <= spec.n, name
            assert int(zero.sum()) == rows * cols * (spec.m - spec.n) // spec.m, name
            assert report["modules"][name]["pattern_ok"] is True
        elif method == "sparsegpt":   # one selection per 32-column block
            for i1 in range(0, cols, 32):
                block = zero[:, i1:i1 + 32]
                assert int(block.sum()) == int(block.numel() * spec.sparsity), (name, i1)
        elif method == "wanda":       # one selection per output row
            assert zero.sum(dim=1).tolist() == [int(cols * spec.sparsity)] * rows, name
        else:                         # one threshold per matrix
            assert int(zero.sum()) == int(weight.numel() * spec.sparsity), name
        if method != "sparsegpt":     # only SparseGPT changes the weights it keeps
            assert torch.equal(weight[~zero], before[name][~zero]), name
        entry = report["modules"][name]
        assert entry["shape"] == [rows, cols]
        assert entry["sparsity"] == pytest.approx(float(zero.float().mean()))
        assert entry["damping_raised"] == 0
        assert (entry["damping"] == 0.01) if method == "sparsegpt" else (entry["damping"] is None)
        total_zeros += int(zero.sum())
        total += weight.numel()
    assert report["overall_sparsity"] == pytest.approx(total_zeros / total)


def test_bfloat16_model_keeps_dtype_and_pattern():
    for method in ("sparsegpt", "wanda"):
        model = tiny_model("llama", dtype=torch.bfloat16)
        report = prune_model(model, calibration(), parse_method(f"{method}-2of4"), log=quiet)
        for name, module in linears(model).items():
            assert module.weight.dtype == torch.bfloat16
            assert report["modules"][name]["pattern_ok"] is True
            assert report["modules"][name]["sparsity"] == 0.5


def test_skip_modules_stay_dense():
    model = tiny_model("qwen2")
    down = model.model.layers[1].mlp.down_proj.weight.detach().clone()
    report = prune_model(model, calibration(), parse_method("wanda-0.5"), skip_modules=("down_proj",), log=quiet)
    assert not any(name.endswith("down_proj") for name in report["modules"])
    assert len(report["modules"]) == 2 * (len(LINEARS) - 1)
    assert torch.equal(model.model.layers[1].mlp.down_proj.weight, down)


# ------------------------------------------------------------------------------------------ quality

def correlated_layer(seed=0):
    """A 32x64 layer whose 400 input tokens are correlated (rank-16 mixing) and unevenly scaled."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(400, 16, generator=generator)
    mixing = torch.randn(16, 64, generator=generator) * torch.exp(torch.randn(64, generator=generator))
    x = z @ mixing
    x = x + 0.1 * x.std() * torch.randn(x.shape, generator=generator)
    return torch.randn(32, 64, generator=generator), x


@pytest.mark.parametrize("pattern", ["0.5", "2of4"])
def test_reconstruction_error_order(pattern):
    weight, x = correlated_layer()
    hessian, norms = InputStatistic("hessian", 64), InputStatistic("norms", 64)
    hessian.add(x)
    norms.add(x)
    stats = {"sparsegpt": hessian.value, "wanda": norms.value, "magnitude": None}
    error = {}
    for method, stat in stats.items():
        pruned = METHODS[method].prune(weight, stat, parse_method(f"{method}-{pattern}"), log=quiet)
        error[method] = float((x @ weight.T - x @ pruned.T).norm() / (x @ weight.T).norm())
    assert error["sparsegpt"] < 0.9 * error["wanda"] < 0.9 * 0.9 * error["magnitude"], error


def test_wanda_mask_closed_form():
    weight = torch.tensor([[5.0, -1.0, 0.5, 0.75],
                           [1.0, 1.0, -1.0, 1.0]])
    norms = InputStatistic("norms", 4)
    norms.add(torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, -2.0, -3.0, -4.0]]))   # sqrt(mean x^2) = 1, 2, 3, 4
    assert torch.equal(norms.value, torch.tensor([1.0, 4.0, 9.0, 16.0]))
    # scores |W| * ||x||: row 0 = 5, 2, 1.5, 3 -> prune columns 2, 1; row 1 = 1, 2, 3, 4 -> prune 0, 1.
    pruned = METHODS["wanda"].prune(weight, norms.value, parse_method("wanda-0.5"))
    assert torch.equal(pruned == 0, torch.tensor([[False, True, True, False], [True, True, False, False]]))
    assert torch.equal(pruned[pruned != 0], weight[pruned != 0])
    # 1:4 keeps only the highest score of each row; magnitude would keep column 0 of row 1 (ties, first).
    pruned = METHODS["wanda"].prune(weight, norms.value, parse_method("wanda-1of4"))
    assert torch.equal(pruned != 0, torch.tensor([[True, False, False, False], [False, False, False, True]]))


@pytest.mark.parametrize("k", [0, 1, 7, 20, 39, 40])
def test_selection_equals_a_stable_sort_even_with_ties(k):
    generator = torch.Generator().manual_seed(k)
    scores = torch.randint(0, 5, (6, 40), generator=generator).float()      # many ties
    expected = torch.zeros_like(scores, dtype=torch.bool)
    expected.scatter_(1, torch.argsort(scores, dim=1, stable=True)[:, :k], True)
    assert torch.equal(row_lowest_mask(scores, k), expected)
    flat = torch.zeros(scores.numel(), dtype=torch.bool)
    flat[torch.argsort(scores.flatten(), stable=True)[: k * 6]] = True
    assert torch.equal(lowest_mask(scores, k * 6), flat.view(scores.shape))


def reference_sparsegpt(weight, hessian, sparsity, prune_n, prune_m, blocksize, percdamp=0.01, verbatim=False):
    """IST-DASLab/sparsegpt fasterprune, transcribed; its `<= thresh` picks one more than int(numel * s),
    so unless ``verbatim`` the threshold here is the k-th lowest score (index k - 1) to prune exactly k."""
    W = weight.clone().float()
    H = hessian.clone()
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H[range(columns), range(columns)] += percdamp * torch.mean(torch.diag(H))
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        if prune_n == 0:
            tmp = W1 ** 2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            mask1 = tmp <= torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity) - (0 if verbatim else 1)]
        else:
            mask1 = torch.zeros_like(W1) == 1
        for i in range(i2 - i1):
            w, d = W1[:, i], Hinv1[i, i]
            if prune_n != 0 and i % prune_m == 0:
                tmp = W1[:, i:(i + prune_m)] ** 2 / (torch.diag(Hinv1)[i:(i + prune_m)].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


@pytest.mark.parametrize("name, prune_n, prune_m", [("sparsegpt-0.6", 0, 0), ("sparsegpt-2of4", 2, 4),
                                                    ("sparsegpt-4of8", 4, 8)])
def test_sparsegpt_matches_reference(name, prune_n, prune_m):
    weight, x = correlated_layer(seed=3)
    x[:, 5] = 0                                     # a dead input channel
    hessian = InputStatistic("hessian", 64)
    hessian.add(x)
    spec = parse_method(name)
    expected = reference_sparsegpt(weight, hessian.value, spec.sparsity, prune_n, prune_m, blocksize=16)
    pruned = METHODS["sparsegpt"].prune(weight, hessian.value, spec, blocksize=16, log=quiet)
    assert torch.equal(pruned == 0, expected == 0)
    torch.testing.assert_close(pruned, expected)
    assert bool((pruned[:, 5] == 0).all())


def test_the_triangular_inverse_in_column_blocks_is_the_inverse():
    from prunebench.pruning.sparsegpt import lower_triangular_inverse
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(400, 100, generator=generator, dtype=torch.float64)
    lower = torch.linalg.cholesky(x.T @ x / 400 + 0.01 * torch.eye(100, dtype=torch.float64)).float()
    eye = torch.eye(100)
    expected = torch.linalg.inv(lower.double()).float()           # LU, not a triangular solve
    for block in (7, 16, 50, 100):                                # uneven, even, two blocks, whole
        inverse = lower_triangular_inverse(lower, eye, block=block)
        assert torch.equal(inverse, inverse.tril())
        torch.testing.assert_close(inverse, expected, rtol=1e-4, atol=1e-5)


def test_sparsegpt_with_a_blocked_inverse_matches_the_reference(monkeypatch):
    from prunebench.pruning import sparsegpt
    monkeypatch.setattr(sparsegpt, "INVERSE_BLOCK", 12)       # 64 columns: six blocks of 12 and one of 4
    weight, x = correlated_layer(seed=6)
    hessian = InputStatistic("hessian", 64)
    hessian.add(x)
    expected = reference_sparsegpt(weight, hessian.value, 0.5, 0, 0, blocksize=16)
    pruned = METHODS["sparsegpt"].prune(weight, hessian.value, parse_method("sparsegpt-0.5"), blocksize=16, log=quiet)
    assert torch.equal(pruned == 0, expected == 0)
    torch.testing.assert_close(pruned, expected, rtol=1e-4, atol=1e-4)   # the reference inverts another way


def test_reference_mask_selection_matches_the_reference_verbatim():
    weight, x = correlated_layer(seed=4)
    hessian = InputStatistic("hessian", 64)
    hessian.add(x)
    spec = parse_method("sparsegpt-0.5")
    expected = reference_sparsegpt(weight, hessian.value, 0.5, 0, 0, blocksize=16, verbatim=True)
    pruned = METHODS["sparsegpt"].prune(weight, hessian.value, spec, blocksize=16, log=quiet,
                                        mask_selection="reference")
    torch.testing.assert_close(pruned, expected)
    blocks = weight.shape[1] // 16
    assert int((pruned == 0).sum()) == int(weight.numel() * 0.5) + blocks   # one more per block
    exact = METHODS["sparsegpt"].prune(weight, hessian.value, spec, blocksize=16, log=quiet)
    assert int((exact == 0).sum()) == int(weight.numel() * 0.5)
    with pytest.raises(ValueError, match="mask_selection"):
        METHODS["sparsegpt"].prune(weight, hessian.value, spec, mask_selection="closest")


# -------------------------------------------------------------------------------------- statistics

def test_statistics_do_not_depend_on_how_tokens_are_split():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=generator) * torch.linspace(0.1, 5.0, 16)
    for kind, expected in (("hessian", 2 / 300 * x.T @ x), ("norms", x.pow(2).mean(dim=0))):
        whole, split = InputStatistic(kind, 16), InputStatistic(kind, 16)
        whole.add(x.unsqueeze(0))                               # one sequence of 300 tokens
        for chunk in torch.split(x, [7, 100, 1, 192]):          # the same tokens as four sequences
            split.add(chunk.unsqueeze(0))
        assert whole.tokens == split.tokens == 300
        torch.testing.assert_close(split.value, whole.value, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(whole.value, expected, rtol=1e-5, atol=1e-6)
        assert whole.value.dtype == torch.float32


def test_statistics_accumulate_in_fp32_from_bf16_inputs():
    x = torch.randn(50, 8).to(torch.bfloat16)
    stat = InputStatistic("hessian", 8)
    stat.add(x)
    assert stat.value.dtype == torch.float32
    torch.testing.assert_close(stat.value, 2 / 50 * x.float().T @ x.float())


def test_modules_reading_one_input_share_one_statistic():
    model = tiny_model("llama")
    layer = model.model.layers[0]
    inputs = {}
    handle = layer.self_attn.q_proj.register_forward_hook(lambda m, args, out: inputs.setdefault("q", []).append(args[0]))
    modules = {name: m for name, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
    cal = calibration()
    with torch.no_grad():
        hidden, calls = capture_inputs(model, model.model.layers, cal, torch.device("cpu"))
        with driver._Collector(modules, "hessian") as collector:
            driver._replay(layer, hidden, calls, 0, torch.device("cpu"), collector)
    handle.remove()
    assert collector.groups() == [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["self_attn.o_proj"],
                                  ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]]
    assert len(collector.stats) == 4
    x = torch.cat([t.reshape(-1, 64) for t in inputs["q"]])
    assert x.shape[0] == sum(len(ids) for ids in cal)
    torch.testing.assert_close(collector.statistic("self_attn.v_proj"), 2 / x.shape[0] * x.T @ x)
    assert collector.statistic("self_attn.k_proj") is collector.statistic("self_attn.q_proj")


# ------------------------------------------------------------------------------------------ driver

@pytest.mark.parametrize("kind", ["qwen2", "llama", "gemma3"])
def test_capture_and_replay_reproduce_the_model(kind):
    """Replaying each layer with its captured call gives the model's own hidden states. Gemma 3 gives
    its local and global layers different masks and rotary tables, so each layer's call is kept."""
    if kind == "gemma3":
        torch.manual_seed(0)
        config = Gemma3TextConfig(**{**TINY, "num_hidden_layers": 3}, head_dim=16, sliding_window=8,
                                  layer_types=["sliding_attention", "full_attention", "sliding_attention"])
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()
    else:
        model = tiny_model(kind)
    layers = model.model.layers
    cal = calibration((20, 9))
    with torch.no_grad():
        hidden, calls = capture_inputs(model, layers, cal, torch.device("cpu"))
        states = [model(ids.unsqueeze(0), output_hidden_states=True).hidden_states for ids in cal]
        for j in range(len(cal)):
            assert torch.equal(hidden[j], states[j][0])
        for i, layer in enumerate(layers[:-1]):          # the last hidden state is after the final norm
            hidden = driver._replay(layer, hidden, calls, i, torch.device("cpu"))
            for j in range(len(cal)):
                torch.testing.assert_close(hidden[j], states[j][i + 1], rtol=0, atol=1e-6)
    assert all(layer.forward.__self__ is layer for layer in layers)   # pass-through removed


def test_next_layer_statistics_come_from_the_pruned_layer(monkeypatch):
    """Layer 1's statistic is that of its input in the final model (layer 0 pruned), over all tokens."""
    seen = {}
    prune_module = driver._prune_module

    def spy(module, stat, spec, method, options, qualified, report, prepared=None):
        seen[qualified] = stat.clone()
        return prune_module(module, stat, spec, method, options, qualified, report, prepared)

    monkeypatch.setattr(driver, "_prune_module", spy)
    model, cal = tiny_model("qwen2"), calibration()
    prune_model(model, cal, parse_method("wanda-0.5"), log=quiet)
    inputs = []
    layer = model.model.layers[1]
    handle = layer.self_attn.q_proj.register_forward_hook(lambda m, args, out: inputs.append(args[0].reshape(-1, 64)))
    with torch.no_grad():
        for ids in cal:
            model(ids.unsqueeze(0))
    handle.remove()
    x = torch.cat(inputs)
    expected = x.pow(2).mean(dim=0)
    torch.testing.assert_close(seen["model.layers.1.self_attn.q_proj"], expected, rtol=1e-5, atol=1e-7)
    assert set(seen) == set(linears(model))


def test_running_on_a_named_device_gives_the_same_result():
    cal = calibration()
    here, named = tiny_model("llama"), tiny_model("llama")
    named.config.tie_word_embeddings = True
    named.tie_weights()
    here.config.tie_word_embeddings = True
    here.tie_weights()
    prune_model(here, cal, parse_method("sparsegpt-2of4"), log=quiet)
    prune_model(named, cal, parse_method("sparsegpt-2of4"), device="cpu", log=quiet)
    assert named.lm_head.weight is named.model.embed_tokens.weight
    for (name, a), (_, b) in zip(here.state_dict().items(), named.state_dict().items()):
        assert torch.equal(a, b), name


def test_offloaded_activations_give_the_same_result():
    cal = calibration()
    here, offloaded = tiny_model("qwen2"), tiny_model("qwen2")
    prune_model(here, cal, parse_method("sparsegpt-0.5"), log=quiet)
    prune_model(offloaded, cal, parse_method("sparsegpt-0.5"), offload_activations=True, device="cpu", log=quiet)
    for (name, a), (_, b) in zip(here.state_dict().items(), offloaded.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("method", ["sparsegpt-0.5", "wanda-2of4", "magnitude-0.5"])
def test_a_killed_run_resumes_at_its_first_unfinished_layer(tmp_path, method):
    cal, spec = calibration(), parse_method(method)
    whole = tiny_model("qwen2")
    prune_model(whole, cal, spec, log=quiet)

    def killed_after_the_first_layer(message):
        if "layer 1/" in message:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        prune_model(tiny_model("qwen2"), cal, spec, checkpoint_dir=tmp_path, checkpoint_key="run",
                    log=killed_after_the_first_layer)
    resumed = tiny_model("qwen2")
    messages = []
    report = prune_model(resumed, cal, spec, checkpoint_dir=tmp_path, checkpoint_key="run", log=messages.append)
    assert report["resumed_layers"] == 1 and "resumed" in messages[0] and "pruned" in messages[1]
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert len(report["modules"]) == len(linears(whole))
    # checkpoints of another run (model, calibration, setting) are not used
    other = prune_model(tiny_model("qwen2"), cal, spec, checkpoint_dir=tmp_path, checkpoint_key="other", log=quiet)
    assert other["resumed_layers"] == 0


def test_upper_triangle_accumulation_equals_the_full_product(monkeypatch):
    generator = torch.Generator().manual_seed(2)
    parts = [torch.randn(1, n, 40, generator=generator) for n in (30, 5, 70)]
    monkeypatch.setattr(InputStatistic, "SYMMETRIC_BLOCK", 8)            # 40 columns: five row blocks
    blocked = InputStatistic("hessian", 40)
    for index, part in enumerate(parts):
        blocked.add(part)
        if index == 1:
            blocked.value                                                  # a read between adds
    x = torch.cat([p.reshape(-1, 40) for p in parts])
    torch.testing.assert_close(blocked.value, 2 / x.shape[0] * x.T @ x, rtol=1e-5, atol=1e-5)
    assert torch.equal(blocked.value, blocked.value.T)


def test_long_sequences_accumulate_in_chunks_to_the_same_statistic(monkeypatch):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, 1000, 16, generator=generator)
    whole = InputStatistic("hessian", 16)
    whole.add(x)
    monkeypatch.setattr(InputStatistic, "CHUNK_TOKENS", 64)
    chunked = InputStatistic("hessian", 16)
    chunked.add(x)
    torch.testing.assert_close(chunked.value, whole.value, rtol=1e-5, atol=1e-6)
    assert chunked.tokens == 1000


def test_driver_rejects_bad_inputs():
    with pytest.raises(ValueError, match="layers_path"):
        prune_model(tiny_model(), calibration(), parse_method("wanda-0.5"), layers_path="model.blocks", log=quiet)
    with pytest.raises(ValueError, match="calibration"):
        prune_model(tiny_model(), [], parse_method("wanda-0.5"), log=quiet)
    report = prune_model(tiny_model(), [], parse_method("magnitude-0.5"), log=quiet)   # needs no data
    assert report["overall_sparsity"] == 0.5


def test_true_sequential_recomputes_later_groups():
    cal = calibration()
    plain, sequential = tiny_model("llama"), tiny_model("llama")
    prune_model(plain, cal, parse_method("sparsegpt-0.5"), log=quiet)
    report = prune_model(sequential, cal, parse_method("sparsegpt-0.5"), true_sequential=True, log=quiet)
    a, b = linears(plain), linears(sequential)
    # The first group of the first layer sees the same dense statistics; later groups do not.
    assert torch.equal(a["model.layers.0.self_attn.q_proj"].weight, b["model.layers.0.self_attn.q_proj"].weight)
    assert not torch.equal(a["model.layers.0.self_attn.o_proj"].weight, b["model.layers.0.self_attn.o_proj"].weight)
    assert not torch.equal(a["model.layers.0.mlp.down_proj"].weight, b["model.layers.0.mlp.down_proj"].weight)
    assert all(entry["sparsity"] == 0.5 for entry in report["modules"].values())


def test_pruning_is_deterministic():
    cal = calibration()
    first, second = tiny_model("qwen2"), tiny_model("qwen2")
    prune_model(first, cal, parse_method("sparsegpt-0.5"), log=quiet)
    prune_model(second, cal, parse_method("sparsegpt-0.5"), log=quiet)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_pruned_model_saves_reloads_and_generates(tmp_path):
    model = tiny_model("qwen2")
    prune_model(model, calibration(), parse_method("sparsegpt-2of4"), log=quiet)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    for name, module in linears(reloaded).items():
        assert torch.equal(module.weight, linears(model)[name].weight), name
        assert float((module.weight == 0).float().mean()) == 0.5
    out = reloaded.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False,
                            attention_mask=torch.ones(1, 3, dtype=torch.long))
    assert out.shape == (1, 7)


# -------------------------------------------------------------------------------- failed Cholesky

def indefinite_hessian(columns=64, smallest=-0.05, seed=0):
    """Eigenvalues 1 except one negative: indefinite at dampening 0.01 x mean(diag), fine at 0.1."""
    q, _ = torch.linalg.qr(torch.randn(columns, columns, generator=torch.Generator().manual_seed(seed)))
    eigenvalues = torch.ones(columns)
    eigenvalues[-1] = smallest
    return (q * eigenvalues) @ q.T


def test_modules_sharing_a_hessian_share_one_inverse_factor(monkeypatch):
    calls = []
    prepare = sparsegpt.prepare
    monkeypatch.setitem(METHODS, "sparsegpt", METHODS["sparsegpt"].__class__(
        "sparsegpt", "hessian", sparsegpt.prune, lambda stat, **kw: calls.append(kw["name"]) or prepare(stat, **kw)))
    here, alone = tiny_model("qwen2"), tiny_model("qwen2")
    cal = calibration()
    prune_model(here, cal, parse_method("sparsegpt-0.5"), log=quiet)
    assert len(calls) == 4 * len(here.model.layers)          # q/k/v, o, gate/up, down
    assert all(c.endswith(("q_proj", "o_proj", "gate_proj", "down_proj")) for c in calls)
    monkeypatch.undo()
    prune_model(alone, cal, parse_method("sparsegpt-0.5"), log=quiet)
    for (name, a), (_, b) in zip(here.state_dict().items(), alone.state_dict().items()):
        assert torch.equal(a, b), name


def test_indefinite_hessian_raises_the_dampening():
    weight = torch.randn(32, 64, generator=torch.Generator().manual_seed(1))
    messages, info = [], {}
    pruned = METHODS["sparsegpt"].prune(weight, indefinite_hessian(), parse_method("sparsegpt-0.5"),
                                        log=messages.append, info=info)
    assert info == {"damping": pytest.approx(0.1), "damping_raised": 1}
    assert len(messages) == 1 and "Cholesky failed" in messages[0]
    assert int((pruned == 0).sum()) == 32 * 64 // 2


def test_unusable_hessian_raises_instead_of_falling_back():
    hessian = indefinite_hessian()
    hessian[3, 3] = float("nan")
    with pytest.raises(RuntimeError, match="still fails"):
        METHODS["sparsegpt"].prune(torch.randn(8, 64), hessian, parse_method("sparsegpt-0.5"), log=quiet)


def test_failed_cholesky_is_recorded_in_the_report(monkeypatch):
    """Every first factorisation fails: each must raise its dampening once and say so (once per shared
    Hessian: q/k/v, o, gate/up, down), and every module must record it and still reach the exact sparsity."""
    real, calls = torch.linalg.cholesky, {"lower": 0}

    def flaky(matrix, *, upper=False, out=None):
        if not upper:
            calls["lower"] += 1
            if calls["lower"] % 2:
                raise torch.linalg.LinAlgError("simulated: not positive-definite")
        return real(matrix, upper=upper)

    monkeypatch.setattr(torch.linalg, "cholesky", flaky)
    messages = []
    report = prune_model(tiny_model("llama"), calibration(), parse_method("sparsegpt-0.5"), log=messages.append)
    assert len(report["modules"]) == 2 * len(LINEARS)
    for name, entry in report["modules"].items():
        assert entry["damping_raised"] == 1 and entry["damping"] == pytest.approx(0.1), name
        assert entry["sparsity"] == 0.5, name
    assert sum("Cholesky failed" in message for message in messages) == 2 * 4
    assert sparsegpt.MAX_DAMPING_RAISES >= 1


@pytest.mark.parametrize("sparsity", [1e-05, 0.5, 0.1 + 0.2, 0.999, 1 / 3, 2.5e-07])
def test_canonical_names_round_trip_and_match_the_workflow_wildcard(sparsity):
    import re

    from prunebench.pruning.spec import METHOD_PATTERN

    spec = PruneSpec("sparsegpt", sparsity)
    assert "e" not in spec.name.split("-", 1)[1]
    assert parse_method(spec.name) == spec
    assert re.fullmatch(METHOD_PATTERN, spec.name)


def test_the_spelling_a_config_error_suggests_is_accepted():
    from prunebench import config as pb_config
    from prunebench.io import InputError

    base = {"models": {"m": {"source": {"path": "/x"}}}, "data_dir": None, "allow_hub": True}
    with pytest.raises(InputError, match=r"write 'sparsegpt-\.00001' as 'sparsegpt-0\.00001'"):
        pb_config.validate({**base, "pruning": {"methods": ["sparsegpt-.00001"]}})
    config = pb_config.validate({**base, "pruning": {"methods": ["sparsegpt-0.00001"]}})
    assert config["pruning"]["methods"] == ["sparsegpt-0.00001"]


def test_sparsegpts_sums_run_on_one_thread_whatever_the_jobs_threads():
    """BLAS and LAPACK sum in an order that follows the threads, and SparseGPT's masks followed it on
    the embedded model (docs/reproducing.md): its Hessian, factor and updates run on one thread."""
    import torch

    from prunebench.pruning import sparsegpt
    from prunebench.pruning.driver import InputStatistic

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        sparsegpt.one_thread(lambda: seen.append(torch.get_num_threads()))()
        assert seen == [1] and torch.get_num_threads() == 2
        for function in (sparsegpt.prepare, sparsegpt.prune, InputStatistic.add):
            assert function.__wrapped__ is not None   # each runs through one_thread
    finally:
        torch.set_num_threads(before)
