# math-verify on the answer after the think span, plus the quality filters.


rule grade:
    input:
        data=paths.data("{dataset}"),
        generations=paths.generations("{model}", "{dataset}"),
        model=paths.model_json("{model}"),
    output:
        paths.graded("{model}", "{dataset}"),
    priority: pool_priority  # quick, and every self-generated calibration set waits for it
    log:
        log_path("grade", "{model}", "{dataset}"),
    params:
        timeout=config["grading"]["timeout_seconds"],
        workers=GRADING_WORKERS,
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench grade --model {input.model} --dataset {wildcards.dataset} --data {input.data} "
        "--generations {input.generations} --timeout {params.timeout} --workers {params.workers} "
        "--out {output} 2> {log}"
