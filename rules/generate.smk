# The dense model answers each source problem n times (the pool SGR and SSGR select from).


rule generate:
    input:
        data=paths.data("{dataset}"),
        model=paths.model_json("{model}"),
        weights=transient_weights,
    output:
        paths.generations("{model}", "{dataset}"),
    threads: model_job_threads
    resources:
        gpu=model_gpus,
        gpu_model=model_gpu_model,
    priority: pool_priority  # the pool feeds SGR and SSGR, the longest chain of the DAG: start it first
    log:
        log_path("generate", "{model}", "{dataset}"),
    params:
        problems=lambda w: scaled(config["self_generation"]["sources"][w.dataset]),
        gen=sampling_params(),
        seed=config["seed"],
        backend=model_backend,
        runtime=model_runtime,
        workers=GRADING_WORKERS,
        adaptive=adaptive_args(),
        data_dir=DATA_DIR_ARG,
    conda:
        MODEL_ENV
    container:
        MODEL_IMAGE
    shell:
        "prunebench generate --model {input.model} --dataset {wildcards.dataset} --data {input.data} "
        "{params.data_dir} --count {params.problems} --samples {params.gen[samples]} "
        "--temperature {params.gen[temperature]} --top-p {params.gen[top_p]} "
        "--max-new-tokens {params.gen[max_new_tokens]} --seed {params.seed} --backend {params.backend} "
        "{params.runtime} --workers {params.workers} "
        "{params.adaptive} --out {output} 2> {log}"
