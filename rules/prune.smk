# Any pruning method (unstructured layer by layer; depth, width and dynamic on the whole model) on
# one calibration set: the checkpoint, its sparsity record (which outlives a checkpoint not kept)
# and the job's wall time and peak memory.


rule prune:
    input:
        unpack(prune_inputs),
    output:
        checkpoint=pruned_checkpoint(paths.pruned("{model}", "{method}", "{recipe}")),
        record=paths.sparsity_record("{model}", "{method}", "{recipe}"),
        measurements=paths.measurements("prune", "{model}", "{method}", "{recipe}"),
    wildcard_constraints:
        method=METHOD_PATTERN,
    threads: model_job_threads
    priority: cell_priority()
    resources:
        gpu=model_gpus,
        gpu_model=model_gpu_model,
    log:
        log_path("prune", "{model}", "{method}", "{recipe}"),
    params:
        options=pruning_flags,
    conda:
        MODEL_ENV
    container:
        MODEL_IMAGE
    shell:
        "prunebench prune --model {input.model} --calibration {input.calibration} --method {wildcards.method} "
        "{params.options} --out {output.checkpoint} --record {output.record} "
        "--measurements {output.measurements} 2> {log}"
