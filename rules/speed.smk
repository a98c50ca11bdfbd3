# Size, prefill and decode throughput and peak memory of every row of the speed table (the study's
# dense and structured models). A speed job takes a model job's cores, like any other: one that
# asked for every core would wait for the machine to empty, which a busy run rarely does, and each
# pruned checkpoint (its input) would stay on disk until the end of the run. Quiet-machine figures
# are bench/structured_speed.py's.


rule measure_speed:
    input:
        model=evaluated_model,
    output:
        paths.speed("{model}", "{method}", "{recipe}"),
    threads: model_job_threads
    priority: cell_priority(evaluation=True)
    resources:
        gpu=model_gpus,
        gpu_model=model_gpu_model,
    log:
        log_path("speed", "{model}", "{method}", "{recipe}"),
    params:
        settings=" ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(config["study"]["speed"].items())),
        seed=config["seed"],
    conda:
        MODEL_ENV
    container:
        MODEL_IMAGE
    shell:
        "prunebench speed --model {input.model} --threads {threads} {params.settings} --seed {params.seed} "
        "--out {output} 2> {log}"
