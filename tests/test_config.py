"""Config loading: both shipped configs validate; a bad one fails naming the key."""

import copy

import pytest
import yaml

from prunebench import config as pb_config
from prunebench import grid
from prunebench.io import InputError

from .conftest import ROOT


@pytest.fixture(scope="module")
def default():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "paper-b.yaml", "resp.yaml", "smollm2.yaml"])
def test_shipped_configs_validate(name):
    config = pb_config.load(ROOT / "config" / name)
    assert config["models"] and config["calibration"]["recipes"]


def test_schema_file_is_the_package_schema():
    assert (ROOT / "config" / "schema.yaml").resolve() == pb_config.SCHEMA_PATH.resolve()


def test_defaults_are_filled():
    config = pb_config.validate({"models": {"m": {"source": {"path": "/x"}}}})
    assert config["self_generation"]["samples"] == 16 and config["evaluation"]["samples"] == 4
    assert config["models"]["m"]["dtype"] == "bfloat16" and config["models"]["m"]["layers"] == "model.layers"
    assert config["calibration"]["max_length"] == 16384


@pytest.mark.parametrize("edit,key", [
    (lambda c: c["evaluation"].update(samples=0), "config.evaluation.samples"),
    (lambda c: c["self_generation"].update(top_p=1.5), "config.self_generation.top_p"),
    (lambda c: c["models"]["qwen2.5-coder-0.5b-instruct"].pop("source"), "config.models.qwen2.5-coder-0.5b-instruct"),
    (lambda c: c["models"]["qwen2.5-coder-0.5b-instruct"].update(dtype="int3"),
     "config.models.qwen2.5-coder-0.5b-instruct.dtype"),
    (lambda c: c.update(unknown_key=1), "config"),
    (lambda c: c["pruning"].update(methods=["sparsegpt-1.5"]), "config.pruning.methods[0]"),
    (lambda c: c["pruning"].update(methods=["sparsegpt-0.50"]), "config.pruning.methods[0]"),
    (lambda c: c["calibration"].update(recipes=["c4", "nosuch"]), "config.calibration.recipes"),
    (lambda c: c["calibration"]["recipe_definitions"].update(x={"type": "magic"}),
     "config.calibration.recipe_definitions.x.type"),
    (lambda c: c["evaluation"]["benchmarks"].update(c4=3), "config.evaluation.benchmarks"),
    (lambda c: c["self_generation"]["sources"].update(nosuch=3), "config.self_generation.sources"),
])
def test_bad_config_names_the_key(default, edit, key):
    config = copy.deepcopy(default)
    edit(config)
    with pytest.raises(InputError) as err:
        pb_config.validate(config, "config.yaml")
    message = str(err.value)
    assert message.startswith("config.yaml: " + key), message


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("models: [\n")
    with pytest.raises(InputError, match="broken.yaml: not valid YAML"):
        pb_config.load(path)


def test_scaled_counts():
    assert grid.scaled(30, 1.0) == 30 and grid.scaled(30, 0.1) == 3 and grid.scaled(2, 0.01) == 1


def test_the_default_draws_every_table_and_figure():
    from prunebench.grid import ALL_FIGURES, ALL_TABLES, calibration_sets, required_rows
    from prunebench.tables import FIGURES, TABLES

    config = pb_config.load(ROOT / "config" / "config.yaml")
    expected = {("table", 1): 6, ("table", 3): 5, ("table", 4): 3, ("table", 5): 4, ("table", 6): 2,
                ("table", 7): 4, ("table", 8): 2, ("figure", 4): 8}
    for kind, numbers in (("table", ALL_TABLES), ("figure", ALL_FIGURES)):
        for number in numbers:
            assert (FIGURES if kind == "figure" else TABLES)[number].status(config) == "built", (kind, number)
            rows = required_rows(config, number, kind)
            assert rows[0].method == "dense"
            if (kind, number) in expected:
                assert len(rows) == expected[kind, number] + 1, (kind, number)
    sets = calibration_sets(config)
    assert len(sets) == len(set(sets)) and {m for m, _ in sets} == {"qwen2.5-coder-0.5b-instruct"}


def test_cells_only_ablations_show_run_their_benchmarks_alone():
    from prunebench.grid import Row, cell_benchmarks

    config = pb_config.load(ROOT / "config" / "config.yaml")
    suites = cell_benchmarks(config)
    qwen = "qwen2.5-coder-0.5b-instruct"
    everything = list(pb_config.load(ROOT / "config" / "config.yaml")["evaluation"]["benchmarks"])
    assert sorted(suites[Row(qwen, "sparsegpt-0.5", "ssgr")]) == sorted(everything)  # Table 2's cell
    assert suites[Row(qwen, "sparsegpt-0.5", "false_samples")] == ["wordproblems"]
    assert suites[Row(qwen, "sparsegpt-2of4", "c4")] == ["wordproblems"]
    assert sorted(suites[Row(qwen, "dense", "none")]) == sorted(everything)
    assert not any(row.model == "smollm2-135m-instruct" for row in suites)  # a generator only


def test_recipe_generator_must_be_a_model():
    config = {"models": {"m": {"source": {"path": "/x"}}},
              "calibration": {"recipes": ["c4"], "recipe_definitions": {
                  "c4": {"type": "pretraining", "datasets": ["c4"]},
                  "other": {"type": "ssgr", "generator": "nobody"}}}}
    with pytest.raises(InputError, match=r"recipe_definitions\.other\.generator: 'nobody' is not under config\.models"):
        pb_config.validate(config, "config")



def test_adaptive_sampling_refuses_recipes_that_need_every_sample():
    with pytest.raises(InputError, match=r"self_generation\.adaptive_tau: 0\.75 stops sampling problems that recipe"):
        pb_config.load(ROOT / "config" / "config.yaml", {"self_generation": {"adaptive_tau": 0.75}})
    table2_only = {"self_generation": {"adaptive_tau": 0.75},
                   "experiments": {key: {"recipes": []} for key in ("table1", "table3", "table4", "table5", "table6",
                                                                   "table7", "table8")}}
    table2_only["experiments"]["figure4"] = {"methods": ["sparsegpt-0.5"]}
    config = pb_config.load(ROOT / "config" / "config.yaml", table2_only)
    assert config["self_generation"]["adaptive_tau"] == 0.75  # Table 2's recipes are all compatible


BASE = {"models": {"m": {"source": {"path": "/x"}}}, "data_dir": None, "allow_hub": True}


def _refused(config: dict, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        pb_config.validate(copy.deepcopy(config), "config", check_paths=True)


@pytest.mark.parametrize("recipe,pattern", [
    ({"type": "ssgr", "tua": 0.5}, r"recipe_definitions\.x: Additional properties .*'tua' was unexpected.*allowed: "
                                   r"type, label, tau, max_length, sequences, generator"),
    ({"type": "ssgr", "max_lenght": 64}, r"'max_lenght' was unexpected"),
    ({"type": "pretraining", "datasets": ["c4"], "generator": "m"}, r"'generator' was unexpected"),
    ({"type": "sgr", "tau": 0.5}, r"'tau' was unexpected"),
    ({"type": "difficulty", "band": "hard", "pick": "short"}, r"'pick' was unexpected"),
])
def test_each_recipe_type_takes_its_own_keys_only(recipe, pattern):
    _refused({**BASE, "calibration": {"recipe_definitions": {"x": recipe}}}, pattern)


def test_recipe_defaults_come_from_the_schema():
    config = pb_config.validate({**BASE, "calibration": {"recipes": ["x"], "recipe_definitions": {"x": {"type": "ssgr"}}}})
    assert config["calibration"]["recipe_definitions"]["x"] == {"type": "ssgr", "tau": 0.75, "max_length": None,
                                                                 "sequences": None, "generator": None}
    schema_tau = pb_config.load_schema()["$defs"]["recipe_ssgr"]["properties"]["tau"]["default"]
    assert schema_tau == 0.75
    import inspect

    from prunebench import calibration
    assert "0.75" not in inspect.getsource(calibration)  # the schema is the one place


def test_recipe_types_are_the_registry():
    from prunebench.calibration import RECIPES

    assert pb_config.load_schema()["$defs"]["recipe"]["properties"]["type"]["enum"] == list(RECIPES)


@pytest.mark.parametrize("source,pattern", [
    ({"path": "/x", "hub": "org/model"}, r"models\.m\.source: give exactly one of path, hub"),
    ({"path": "/x", "hub": "org/model", "revision": "0" * 40}, r"models\.m\.source: "),
    ({"hub": "org/model", "revision": "main"}, r"models\.m\.source\.revision: a pinned revision is a 40-hex commit"),
    ({"hub": "org/model", "revision": "v1.0"}, r"source\.revision: a pinned revision"),
    ({"hub": "org/model"}, r"models\.m\.source: give exactly one"),
])
def test_model_sources_are_one_kind_and_pinned(source, pattern):
    _refused({**BASE, "models": {"m": {"source": source}}}, pattern)


def test_a_pinned_hub_source_is_accepted():
    pb_config.validate({**BASE, "models": {"m": {"source": {"hub": "org/model", "revision": "a" * 40}}}})


@pytest.mark.parametrize("edit,pattern", [
    ({"self_generation": {"sources": {"gpqa_diamond": 4}}},
     r"config\.self_generation\.sources: gpqa_diamond is sealed .* only be a benchmark"),
    ({"calibration": {"recipe_definitions": {"x": {"type": "gold", "datasets": ["gpqa_diamond"]}}}},
     r"recipe_definitions\.x\.datasets: gpqa_diamond is sealed"),
    ({"calibration": {"recipe_definitions": {"x": {"type": "pretraining", "datasets": ["gpqa_diamond"]}}}},
     r"gpqa_diamond is sealed"),
])
def test_a_sealed_dataset_is_a_benchmark_only(edit, pattern):
    _refused({**BASE, **edit}, pattern)


def test_a_missing_data_dir_is_an_error_unless_the_hub_is_allowed(tmp_path):
    missing = str(tmp_path / "nowhere")
    _refused({**BASE, "data_dir": missing, "allow_hub": False}, r"config\.data_dir: .*nowhere is not a directory")
    _refused({**BASE, "data_dir": None, "allow_hub": False}, r"config\.data_dir: null, and allow_hub is false")
    pb_config.validate({**BASE, "data_dir": missing, "allow_hub": True}, check_paths=True)
    pb_config.validate({**BASE, "data_dir": str(tmp_path), "allow_hub": False}, check_paths=True)


def test_a_reference_record_that_is_not_there_is_named(tmp_path):
    _refused({**BASE, "reference": str(tmp_path / "none.json")}, r"config\.reference: .*none\.json is not a file")
    (tmp_path / "record.json").write_text("{}")
    pb_config.validate({**BASE, "reference": str(tmp_path / "record.json")}, check_paths=True)


def test_a_relative_reference_record_is_read_from_the_run_else_from_the_workflow(tmp_path, monkeypatch):
    """A run in any working directory compares itself with the repository's reference/ record; the
    config keeps the path as written (no machine's directories in results)."""
    workflow, run = tmp_path / "workflow", tmp_path / "run"
    (workflow / "reference").mkdir(parents=True)
    (workflow / "reference" / "default.json").write_text("{}")
    run.mkdir()
    monkeypatch.chdir(run)
    config = {**copy.deepcopy(BASE), "reference": "reference/default.json"}
    pb_config.validate(config, check_paths=True, workflow_dir=workflow)
    assert config["reference"] == "reference/default.json"
    assert pb_config.reference_path(config, workflow) == str(workflow / "reference" / "default.json")
    (run / "reference").mkdir()
    (run / "reference" / "default.json").write_text("{}")
    assert pb_config.reference_path(config, workflow) == "reference/default.json"   # the run's own first
    _refused({**BASE, "reference": "reference/other.json"}, r"config\.reference: reference/other\.json is not a file")
    with pytest.raises(InputError, match=r"is not a file \(from .*run nor from .*workflow\)"):
        pb_config.validate({**copy.deepcopy(BASE), "reference": "reference/other.json"}, check_paths=True,
                           workflow_dir=workflow)


def test_nested_override_strings_are_read_by_the_schema():
    config = {**copy.deepcopy(BASE), "evaluation": {"samples": "4", "temperature": "0.5",
                                                     "benchmarks": {"gsm8k": "3"}},
              "pruning": {"true_sequential": "true"}, "title": "42",
              "models": {"m": {"source": {"path": "/x"}, "label": "007", "think": "null"}}}
    pb_config.validate(config, coerce=True)
    assert config["evaluation"]["samples"] == 4 and config["evaluation"]["temperature"] == 0.5
    assert config["evaluation"]["benchmarks"]["gsm8k"] == 3 and config["pruning"]["true_sequential"] is True
    assert config["title"] == "42" and config["models"]["m"]["label"] == "007"  # strings stay strings
    assert config["models"]["m"]["think"] is None
    with pytest.raises(InputError, match=r"config\.evaluation\.samples: 'four' is not of type 'integer'"):
        pb_config.validate({**copy.deepcopy(BASE), "evaluation": {"samples": "four"}}, coerce=True)


def test_a_label_with_control_characters_is_refused():
    _refused({**BASE, "models": {"m": {"source": {"path": "/x"}, "label": "a\nb"}}}, r"models\.m\.label")


@pytest.mark.parametrize("name, pattern", [
    ("boolqq", r"task_suite\.tasks\.boolqq: not a task prunebench ships .* a misspelt name\?"),
    ("popqa", r"task_suite\.tasks\.popqa: reads the hub, which is not allowed"),
    ("../victim/data", r"task_suite\.tasks: '\.\./victim/data' is not a task name"),
])
def test_a_task_that_cannot_run_is_refused_by_the_config_check(name, pattern, tmp_path):
    config = {**BASE, "data_dir": str(tmp_path), "allow_hub": False,
              "task_suite": {"tasks": {name: {"category": "classification"}}}}
    _refused(config, pattern)


def test_a_number_that_is_not_finite_is_refused_by_its_own_key():
    """NaN passes every `minimum` of the schema; it is named where it stands (the study's ratio,
    not the method the ratio would be applied to)."""
    _refused({**BASE, "study": {"methods": ["shortgpt"], "ratios": [float("nan")]}},
             r"config\.study\.ratios\[0\]: nan is not a finite number")
    _refused({**BASE, "evaluation": {"temperature": float("inf")}}, r"config\.evaluation\.temperature: inf is not")


def test_a_method_on_its_own_traces_needs_a_self_generated_recipe():
    """RESP splits each calibration sequence into prompt and response: a study row of it on C4 is
    refused when the config is read, naming the method and the recipe."""
    _refused({**BASE, "study": {"methods": ["resp"], "ratios": [0.2], "recipes": ["c4"]}},
             r"resp-0\.2 prunes on the model's own responses, and recipe 'c4' \(pretraining\) reads c4")
    pb_config.validate(copy.deepcopy({**BASE, "study": {"methods": ["resp"], "ratios": [0.2], "recipes": ["sgr"]}}), "config",
                       check_paths=True)


def test_a_pruning_option_belongs_to_the_methods_that_read_it():
    """A job's params hold only its own method's options: SparseGPT's blocksize reruns no Wanda,
    ShortGPT or SliceGPT prune, and router settings reach only dynamic methods."""
    options = {method: set(pb_config.pruning_options(method)) for method in
               ("sparsegpt", "wanda", "magnitude", "shortgpt", "slicegpt", "skipgpt", "owl_wanda", "owl_sparsegpt",
                "resp")}
    assert options["sparsegpt"] == {"blocksize", "percdamp", "mask_selection", "true_sequential"}
    assert options["wanda"] == {"true_sequential"}
    assert options["owl_wanda"] == {"true_sequential", "owl_lambda", "owl_m"}
    assert options["owl_sparsegpt"] == options["sparsegpt"] | {"owl_lambda", "owl_m"}
    assert options["magnitude"] == options["shortgpt"] == options["slicegpt"] == set()
    assert {"router_steps", "router_temperature"} <= options["skipgpt"] and "blocksize" not in options["skipgpt"]
    assert options["resp"] == {"resp_iterations", "resp_final_ratio", "resp_milestones"}
    assert set(pb_config.pruning_options()) == set().union(*options.values())  # every option has its methods
