# The dense model and every pruned model, each on the benchmarks of the tables that show it: one
# pooled, resumable run per cell, written per benchmark as samples (with grades) and metrics.


rule evaluate:
    input:
        data=lambda w: [paths.data(b) for b in cell_suite(w)],
        model=evaluated_model,
    output:
        directory(paths.eval_dir("{model}", "{method}", "{recipe}")),
    threads: model_job_threads
    priority: cell_priority(evaluation=True)
    resources:
        gpu=model_gpus,
        gpu_model=model_gpu_model,
    log:
        log_path("evaluate", "{model}", "{method}", "{recipe}"),
    params:
        benchmarks=lambda w: " ".join(
            f"--data {b}={paths.data(b)} --count {b}={scaled(config['evaluation']['benchmarks'][b])}"
            + (f" --token-limit {b}={config['evaluation']['token_limits'][b]}" if b in config["evaluation"]["token_limits"] else "")
            for b in cell_suite(w)
        ),
        ev={k: v for k, v in config["evaluation"].items() if k not in ("benchmarks", "token_limits")},
        timeout=config["grading"]["timeout_seconds"],
        seed=config["seed"],
        backend=model_backend,
        runtime=model_runtime,
        workers=GRADING_WORKERS,
        data_dir=DATA_DIR_ARG,
    conda:
        MODEL_ENV
    container:
        MODEL_IMAGE
    shell:
        "prunebench evaluate --model {input.model} {params.benchmarks} {params.data_dir} "
        "--samples {params.ev[samples]} --temperature {params.ev[temperature]} --top-p {params.ev[top_p]} "
        "--max-new-tokens {params.ev[max_new_tokens]} --seed {params.seed} --backend {params.backend} "
        "{params.runtime} --timeout {params.timeout} --workers {params.workers} "
        "--label {wildcards.method}/{wildcards.recipe} --out-dir {output} 2> {log}"
