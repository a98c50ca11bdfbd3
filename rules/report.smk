# Tables and figures of the paper from the metrics, then the HTML page and the LaTeX paper.


rule table:
    input:
        lambda w: pb_tables.required_inputs(config, int(w.n)),
    output:
        csv=report(paths.table("{n}", "csv"), caption="../report/captions/table.rst", category="Tables",
                   labels={"table": "Table {n}"}),
        json=paths.table("{n}", "json"),
    priority: LIGHT
    log:
        log_path("tables", "table{n}"),
    params:
        config=TABLE_CONFIG_JSON,
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench table --number {wildcards.n} --config-json {params.config:q} "
        "--out-csv {output.csv} --out-json {output.json} 2> {log}"


rule figure:
    input:
        lambda w: pb_tables.required_inputs(config, int(w.n), "figure"),
    output:
        svg=report(paths.figure("{n}", "svg"), caption="../report/captions/figure.rst", category="Figures",
                   labels={"figure": "Figure {n}"}),
        pdf=paths.figure("{n}", "pdf"),
        json=paths.figure("{n}", "json"),
    priority: LIGHT
    log:
        log_path("figures", "figure{n}"),
    params:
        config=TABLE_CONFIG_JSON,
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench figure --number {wildcards.n} --config-json {params.config:q} "
        "--out-svg {output.svg} --out-pdf {output.pdf} --out-json {output.json} 2> {log}"


rule lrm_table:
    input:
        pb_suite.required_inputs(config),
    output:
        csv=report(paths.lrm_table(pb_suite.TABLE, "csv"), caption="../report/captions/lrm_table.rst",
                   category="Tables", labels={"table": "Tasks by category (LLMs to LRMs)"}),
        json=paths.lrm_table(pb_suite.TABLE, "json"),
    priority: LIGHT
    log:
        log_path("tables", paths.LRM + pb_suite.TABLE),
    params:
        config=SUITE_CONFIG_JSON,
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench lrm-table --config-json {params.config:q} --out-csv {output.csv} --out-json {output.json} 2> {log}"


rule lrm_figure:
    input:
        pb_suite.required_inputs(config),
    output:
        svg=report(paths.lrm_figure(pb_suite.FIGURE, "svg"), caption="../report/captions/lrm_figure.rst",
                   category="Figures", labels={"figure": "Category averages (LLMs to LRMs)"}),
        pdf=paths.lrm_figure(pb_suite.FIGURE, "pdf"),
        json=paths.lrm_figure(pb_suite.FIGURE, "json"),
    priority: LIGHT
    log:
        log_path("figures", paths.LRM + pb_suite.FIGURE),
    params:
        config=SUITE_CONFIG_JSON,
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench lrm-figure --config-json {params.config:q} --out-svg {output.svg} --out-pdf {output.pdf} "
        "--out-json {output.json} 2> {log}"


rule lrm_speed_table:
    input:
        pb_suite.speed_inputs(config),
    output:
        csv=report(paths.lrm_table(paths.SPEED_TABLE, "csv"), caption="../report/captions/lrm_speed.rst",
                   category="Tables", labels={"table": "Speed and size (LLMs to LRMs)"}),
        json=paths.lrm_table(paths.SPEED_TABLE, "json"),
    priority: LIGHT
    log:
        log_path("tables", paths.LRM + paths.SPEED_TABLE),
    params:
        config=SUITE_CONFIG_JSON,
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench lrm-table --table speed --config-json {params.config:q} --out-csv {output.csv} "
        "--out-json {output.json} 2> {log}"


rule lrm_study_table:
    input:
        lambda w: pb_study.inputs(w.study_table),
    output:
        csv=report(paths.lrm_table("{study_table}", "csv"), caption="../report/captions/lrm_study.rst",
                   category="Tables", subcategory="The study (LLMs to LRMs)", labels={"table": "{study_table}"}),
        json=paths.lrm_table("{study_table}", "json"),
    wildcard_constraints:
        study_table="|".join(pb_study.TABLES),
    priority: LIGHT
    log:
        log_path("tables", f"{paths.LRM}{{study_table}}"),
    params:
        config=SUITE_CONFIG_JSON,
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench lrm-table --table {wildcards.study_table} --config-json {params.config:q} "
        "--out-csv {output.csv} --out-json {output.json} 2> {log}"


rule lrm_study_figure:
    input:
        lambda w: pb_study.inputs(w.study_figure),
    output:
        svg=report(paths.lrm_figure("{study_figure}", "svg"), caption="../report/captions/lrm_study.rst",
                   category="Figures", subcategory="The study (LLMs to LRMs)", labels={"figure": "{study_figure}"}),
        pdf=paths.lrm_figure("{study_figure}", "pdf"),
        json=paths.lrm_figure("{study_figure}", "json"),
    wildcard_constraints:
        study_figure="|".join(pb_study.FIGURES),
    priority: LIGHT
    log:
        log_path("figures", f"{paths.LRM}{{study_figure}}"),
    params:
        config=SUITE_CONFIG_JSON,
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench lrm-figure --figure {wildcards.study_figure} --config-json {params.config:q} "
        "--out-svg {output.svg} --out-pdf {output.pdf} --out-json {output.json} 2> {log}"


STUDY_OUTPUTS = expand(paths.lrm_table("{name}", "{ext}"), name=pb_study.TABLES, ext=["csv", "json"]) + expand(
    paths.lrm_figure("{name}", "{ext}"), name=pb_study.FIGURES, ext=["svg", "pdf", "json"])


rule render_report:
    input:
        tables=expand(paths.table("{n}", "{ext}"), n=pb_grid.ALL_TABLES, ext=["csv", "json"]),
        figures=expand(paths.figure("{n}", "{ext}"), n=pb_grid.ALL_FIGURES, ext=["svg", "pdf", "json"]),
        lrm=rules.lrm_table.output + rules.lrm_figure.output + rules.lrm_speed_table.output,
        study=STUDY_OUTPUTS,
        graded=expand(paths.graded("{model}", "{dataset}"), model=MODELS, dataset=POOL_SOURCES),
        calibration=[paths.calibration(m, r) for m, r in pb_grid.calibration_sets(config)],
        verify=paths.verify("reproducibility.json"),
        templates=[REPORT_DIR / "templates" / name for name in ("_head.html.j2", "index.html.j2", "speed.html.j2", "paper.tex.j2")],
        paper=REPORT_DIR / "paper.yaml",
    output:
        html=paths.report("index.html"),
        tex=paths.report("paper.tex"),
        speed=paths.report(paths.SPEED_PAGE),
    log:
        log_path("report"),
    params:
        config=REPORT_CONFIG_JSON,
        templates=REPORT_DIR / "templates",
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench report --config-json {params.config:q} --templates {params.templates} "
        "--paper {input.paper} --out-html {output.html} --out-tex {output.tex} "
        "--out-speed-html {output.speed} 2> {log}"


rule verify:
    input:
        config["verify"]["targets"],
    output:
        paths.verify("reproducibility.json"),
    threads: model_job_threads
    priority: FIRST_PAPER
    log:
        log_path("verify"),
    params:
        targets=lambda w, input: " ".join(f"--target {t}" for t in input),
        tolerance=config["verify"]["tolerance"],
        config=CONFIG_JSON,
        snakefile=RuntimeSetting(workflow.main_snakefile),
        scratch=RuntimeSetting(paths.verify("scratch")),
    conda:
        MODEL_ENV
    container:
        MODEL_IMAGE
    shell:
        "prunebench verify --snakefile {params.snakefile} --config-json {params.config:q} {params.targets} "
        "--scratch {params.scratch} --tolerance {params.tolerance} --cores {threads} --out {output} 2> {log}"


rule paper_pdf:
    input:
        tex=paths.report("paper.tex"),
        figures=expand(paths.figure("{n}", "pdf"), n=pb_grid.ALL_FIGURES),
        lrm_figure=rules.lrm_figure.output.pdf,
    output:
        paths.report("paper.pdf"),
    log:
        log_path("paper_pdf"),
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench paper-pdf --tex {input.tex} --out {output} 2> {log}"


rule manifest:
    input:
        rules.render_report.output,
        rules.verify.output,
        rules.paper_pdf.output if shutil.which(pb_latex.TEX_ENGINE) else [],
    output:
        paths.MANIFEST,
    log:
        log_path("manifest"),
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench manifest --out {output} 2> {log}"


rule report:
    input:
        rules.render_report.output,
        # the PDF too where a TeX engine is installed (`snakemake paper_pdf` asks for it anyway)
        rules.paper_pdf.output if shutil.which(pb_latex.TEX_ENGINE) else [],
        rules.manifest.output,
    localrule: True


# One target per table and figure of the paper: `snakemake table2`, `snakemake figure1`, ...
for _n in pb_grid.ALL_TABLES:

    rule:
        name:
            f"table{_n}"
        input:
            paths.table(_n, "csv"),
            paths.table(_n, "json"),
        localrule: True


for _n in pb_grid.ALL_FIGURES:

    rule:
        name:
            f"figure{_n}"
        input:
            paths.figure(_n, "svg"),
            paths.figure(_n, "pdf"),
        localrule: True


# The second paper's: `snakemake lrm_tasks` (its task table), `snakemake lrm_categories` (its figure),
# `snakemake lrm_speed` (its speed table).
rule lrm_tasks:
    input:
        rules.lrm_table.output,
    localrule: True


rule lrm_categories:
    input:
        rules.lrm_figure.output,
    localrule: True


rule lrm_speed:
    input:
        rules.lrm_speed_table.output,
    localrule: True


# The study's targets: `snakemake lrm_main`, `lrm_calibration`, `lrm_recovery`, `lrm_findings`
# (tables), `lrm_ratios`, `lrm_samples`, `lrm_tradeoff` (figures).
for _name in pb_study.TABLES:

    rule:
        name:
            f"{paths.LRM}{_name}"
        input:
            paths.lrm_table(_name, "csv"),
            paths.lrm_table(_name, "json"),
        localrule: True


for _name in pb_study.FIGURES:

    rule:
        name:
            f"{paths.LRM}{_name}"
        input:
            paths.lrm_figure(_name, "svg"),
            paths.lrm_figure(_name, "pdf"),
        localrule: True
