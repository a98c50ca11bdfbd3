# SparseGPT / Wanda / magnitude, layer by layer, on one calibration set.


rule prune:
    input:
        model=paths.model_json("{model}"),
        calibration=paths.calibration("{model}", "{recipe}"),
    output:
        directory(paths.pruned("{model}", "{method}", "{recipe}")),
    threads: model_job_threads
    resources:
        gpu=model_gpus,
        gpu_model=model_gpu_model,
    log:
        log_path("prune", "{model}", "{method}", "{recipe}"),
    params:
        blocksize=config["pruning"]["blocksize"],
        percdamp=config["pruning"]["percdamp"],
        options=("--true-sequential " if config["pruning"]["true_sequential"] else "")
        + f"--mask-selection {config['pruning']['mask_selection']}",
    conda:
        MODEL_ENV
    container:
        MODEL_IMAGE
    shell:
        "prunebench prune --model {input.model} --calibration {input.calibration} --method {wildcards.method} "
        "--blocksize {params.blocksize} --percdamp {params.percdamp} {params.options} --out {output} 2> {log}"
