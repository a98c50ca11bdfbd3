# The dense model and every pruned model on all benchmarks: one pooled, resumable run per model,
# written per benchmark as samples (with grades) and metrics (pass@1, lengths).


rule evaluate:
    input:
        data=expand(paths.data("{bench}"), bench=BENCHMARKS),
        model=evaluated_model,
    output:
        samples=expand(paths.eval_samples("{{model}}", "{{method}}", "{{recipe}}", "{bench}"), bench=BENCHMARKS),
        metrics=expand(paths.eval_metrics("{{model}}", "{{method}}", "{{recipe}}", "{bench}"), bench=BENCHMARKS),
    threads: model_job_threads
    resources:
        gpu=model_gpus,
        gpu_model=model_gpu_model,
    log:
        log_path("evaluate", "{model}", "{method}", "{recipe}"),
    params:
        benchmarks=" ".join(
            f"--data {b}={paths.data(b)} --count {b}={scaled(n)}"
            for b, n in config["evaluation"]["benchmarks"].items()
        ),
        out_dir=lambda w: Path(paths.eval_metrics(w.model, w.method, w.recipe, "x")).parent,
        ev=config["evaluation"],
        grading=config["grading"],
        seed=config["seed"],
        runtime=runtime_args,
        data_dir=DATA_DIR_ARG,
    conda:
        MODEL_ENV
    container:
        MODEL_IMAGE
    shell:
        "prunebench evaluate --model {input.model} {params.benchmarks} {params.data_dir} "
        "--samples {params.ev[samples]} --temperature {params.ev[temperature]} --top-p {params.ev[top_p]} "
        "--max-new-tokens {params.ev[max_new_tokens]} --seed {params.seed} {params.runtime} "
        "--timeout {params.grading[timeout_seconds]} --workers {params.grading[workers]} "
        "--label {wildcards.method}/{wildcards.recipe} --out-dir {params.out_dir} 2> {log}"
