# Size, prefill and decode throughput and peak memory of every row of the speed table (the study's
# dense and structured models). A speed job takes every core the run has, so that Snakemake runs
# it alone and no other job shares the machine while it is timed.


rule measure_speed:
    input:
        model=evaluated_model,
    output:
        paths.speed("{model}", "{method}", "{recipe}"),
    threads: workflow.cores
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
