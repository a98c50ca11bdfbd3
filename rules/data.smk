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
    priority: CRITICAL  # every core of the machine: left for later, it would wait for all of them at once
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
