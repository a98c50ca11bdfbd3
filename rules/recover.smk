# Recovery fine-tuning of a pruned model (LoRA, data from a calibration recipe): the recovered
# checkpoint (adapter merged; the adapter itself in its adapter/ folder), its record and the job's
# wall time and peak memory. The recovered model is the method METHOD+RECOVERY of the same cell.


rule recover:
    input:
        pruned=paths.pruned("{model}", "{method}", "{recipe}"),
        data=recovery_data,
    output:
        checkpoint=pruned_checkpoint(paths.pruned("{model}", "{method}+{recovery}", "{recipe}")),
        record=paths.sparsity_record("{model}", "{method}+{recovery}", "{recipe}"),
        measurements=paths.measurements("recover", "{model}", "{method}+{recovery}", "{recipe}"),
    wildcard_constraints:
        method=METHOD_PATTERN,
        recovery=RECOVERY_PATTERN,
    threads: model_job_threads
    priority: recovery_priority  # before any other prune: the checkpoint it reads is kept until the last one
    resources:
        gpu=model_gpus,
        gpu_model=model_gpu_model,
    log:
        log_path("recover", "{model}", "{method}+{recovery}", "{recipe}"),
    params:
        settings=recovery_settings,
    conda:
        MODEL_ENV
    container:
        MODEL_IMAGE
    shell:
        "prunebench recover --model {input.pruned} --data {input.data} --recovery {wildcards.recovery} "
        "--settings-json '{params.settings}' "
        "--out {output.checkpoint} --record {output.record} --measurements {output.measurements} 2> {log}"
