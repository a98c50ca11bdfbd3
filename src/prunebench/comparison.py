"""Beyond the papers: methods compared on the same calibration, paired per problem (the OWL table).

An experiment of several methods (`experiments.owl`: the uniform method first, then its layer-wise
allocation) is shown as the first paper's tables are (tables.assemble: pass@1 per benchmark with
its standard error), and every method after the first is compared with the first on the same model
and recipe: the per-problem accuracy difference over the same seeded problems, pooled over the
table's benchmarks, with its standard error and the verdict the first paper's findings use
(prunebench.findings). A method with a layer allocation reports the spread of its layers'
sparsities from its pruning record, so that a reader sees how far it departed from uniform.
"""

from __future__ import annotations

import math
from pathlib import Path

from . import paths
from .findings import Z, _differences, summarize
from .grid import Row, required_rows, table_benchmarks
from .io import read_json
from .provenance import provenance


def _pruned(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.method != paths.DENSE]


def inputs(name: str):
    """The table's inputs: each row's evaluation and each pruned row's pruning record."""

    def needs(config: dict) -> list[str]:
        rows = required_rows(config, name)
        return ([paths.eval_dir(r.model, r.method, r.recipe) for r in rows]
                + [paths.sparsity_record(r.model, r.method, r.recipe) for r in _pruned(rows)])

    return needs


def _layer_spread(root: Path, row: Row) -> dict:
    """The lowest and highest layer sparsity a pruning record names (uniform: its one target)."""
    path = root / paths.sparsity_record(row.model, row.method, row.recipe)
    record = read_json(path) if path.exists() else {}
    targets = record.get("layer_sparsity_targets") or ([record["sparsity_target"]]
                                                       if record.get("sparsity_target") is not None else [])
    return {"layer_sparsity_min": min(targets) if targets else math.nan,
            "layer_sparsity_max": max(targets) if targets else math.nan}


def rows(config: dict, name: str, root: str | Path) -> list[dict]:
    """Every row of the table: its pass@1 columns, its layers' sparsity spread, and, for each method
    after the first, its paired difference from the first method on the same model and recipe."""
    from .tables import assemble

    root = Path(root)
    shown = required_rows(config, name)
    if not shown:
        return []
    methods = config["experiments"][name]["methods"]
    benches = table_benchmarks(config, name)
    frame = assemble(config, name, root)
    out = []
    for row, record in zip(shown, frame.to_dict(orient="records")):
        entry = {k: v for k, v in record.items() if not k.endswith(("_tokens", "_truncated")) or k == "calibration_tokens"}
        if row.method != paths.DENSE:
            entry.update(_layer_spread(root, row))
        if row.method != paths.DENSE and row.method != methods[0]:
            baseline = Row(row.model, methods[0], row.recipe)
            paired = summarize(_differences(root, [(row, baseline)], benches))
            entry.update({"baseline": methods[0], "difference": paired["difference"], "difference_se": paired["se"],
                          "paired_problems": paired["n"], "verdict": paired["verdict"]})
        out.append(entry)
    return out


def writer(name: str):
    """The output registry's writer of the comparison table `name`."""

    def write(config: dict, files: dict, root: Path) -> None:
        from .tables import benchmark_label, caption_of_rows, write_rows

        shown = required_rows(config, name)
        prov = provenance([p for p in (root / path for path in inputs(name)(config)) if p.exists()])
        write_rows(files, name, rows(config, name, root), {
            "status": "built" if shown else "not in this run", "z": Z,
            "benchmarks": table_benchmarks(config, name),
            "benchmark_labels": [benchmark_label(b) for b in table_benchmarks(config, name)],
            "caption": caption_of_rows(config, shown, table_benchmarks(config, name),
                                       "Each method against the first on the same recipe: pass@1 per benchmark; the "
                                       "difference of per-problem pass@1 (in points), paired over the same problems and "
                                       f"pooled over the benchmarks, is separable only beyond {Z:g} standard errors")},
                   prov)

    return write
