# Normalized records of every dataset the run reads, from the local mirror or the hub.


rule data:
    output:
        paths.data("{dataset}"),
    priority: CRITICAL
    log:
        log_path("data", "{dataset}"),
    params:
        data_dir=DATA_DIR_ARG,
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench data --dataset {wildcards.dataset} {params.data_dir} --out {output} 2> {log}"


rule prepare_model:
    output:
        paths.model_json("{model}"),
    wildcard_constraints:
        model=KEPT_MODEL_PATTERN,
    # A model job's cores, like the others: asking for every core, a second model's preparation
    # (Table 8's generator) waited for a moment with both cores free, which a busy run never has,
    # and held the first paper's last table until the study's jobs were done.
    threads: model_job_threads
    priority: CRITICAL
    log:
        log_path("models", "{model}"),
    params:
        entry=model_output_entry,
        out=lambda w: paths.model_dir(w.model),
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench prepare-model --name {wildcards.model} --entry {params.entry:q} --out {params.out} 2> {log}"


# A generator-only model converted from GGUF: its weights are an output of their own, removed once
# its pools are generated (prunebench.grid.transient_checkpoints); model.json stays.
use rule prepare_model as prepare_transient_model with:
    output:
        paths.model_json("{model}"),
        weights=temp(directory(paths.converted_checkpoint("{model}"))),
    wildcard_constraints:
        model=TRANSIENT_MODEL_PATTERN,
