# Every table and figure of both papers (one rule per kind, keyed by the output registry), then the
# HTML page, the LaTeX paper, the manifest, the rerun of a slice of jobs (verify) and the comparison
# with a reference record of another run (reproduce).


rule table:
    input:
        lambda w: OUTPUTS[w.table].needs(config),
    output:
        csv=report(paths.table("{table}", "csv"), caption="../report/captions/output.rst", category="Tables",
                   subcategory=output_paper("table"), labels=output_label("table")),
        json=paths.table("{table}", "json"),
    wildcard_constraints:
        table="|".join(pb_outputs.names("table")),
    priority: LIGHT
    log:
        log_path("tables", "{table}"),
    params:
        config=lambda w: OUTPUT_CONFIG_JSON[w.table],
        about=lambda w: RuntimeSetting(OUTPUTS[w.table].about),
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench table --name {wildcards.table} --config-json {params.config:q} "
        "--out-csv {output.csv} --out-json {output.json} 2> {log}"


rule figure:
    input:
        lambda w: OUTPUTS[w.figure].needs(config),
    output:
        svg=report(paths.figure("{figure}", "svg"), caption="../report/captions/output.rst", category="Figures",
                   subcategory=output_paper("figure"), labels=output_label("figure")),
        pdf=paths.figure("{figure}", "pdf"),
        json=paths.figure("{figure}", "json"),
    wildcard_constraints:
        figure="|".join(pb_outputs.names("figure")),
    priority: LIGHT
    log:
        log_path("figures", "{figure}"),
    params:
        config=lambda w: OUTPUT_CONFIG_JSON[w.figure],
        about=lambda w: RuntimeSetting(OUTPUTS[w.figure].about),
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench figure --name {wildcards.figure} --config-json {params.config:q} "
        "--out-svg {output.svg} --out-pdf {output.pdf} --out-json {output.json} 2> {log}"


rule render_report:
    input:
        outputs=pb_outputs.all_files(),
        graded=expand(paths.graded("{model}", "{dataset}"), model=MODELS, dataset=POOL_SOURCES),
        calibration=[paths.calibration(m, r) for m, r in pb_grid.calibration_sets(config)],
        verify=paths.verify("reproducibility.json"),
        reproduce=[paths.verify("reproduce.json")] if REFERENCE else [],
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


rule reproduce:
    input:
        record=REFERENCE or [],
        outputs=rules.render_report.input.outputs,
        graded=rules.render_report.input.graded,
        calibration=rules.render_report.input.calibration,
    output:
        paths.verify("reproduce.json"),
    priority: LIGHT
    log:
        log_path("reproduce"),
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench reproduce --reference {input.record} --run . --out {output} --report-only 2> {log}"


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
        figures=[f for f in pb_outputs.all_files("figure") if f.endswith(".pdf")],
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


# One target per table and figure of either paper, by its name in the output registry
# (prunebench.outputs): `snakemake table2`, `snakemake figure1`, `snakemake lrm_findings`, ...
for _output in OUTPUTS.values():

    rule:
        name:
            _output.name
        input:
            list(_output.files().values()),
        localrule: True
