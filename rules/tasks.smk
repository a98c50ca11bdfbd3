# The second paper's task suite through lm-evaluation-harness, on the dense model and every pruned
# model of its table: one resumable job per cell, a result and per-document records per task.


rule evaluate_tasks:
    input:
        model=evaluated_model,
    output:
        directory(paths.tasks_dir("{model}", "{method}", "{recipe}")),
    threads: model_job_threads
    priority: cell_priority(evaluation=True)
    resources:
        gpu=model_gpus,
        gpu_model=model_gpu_model,
    log:
        log_path("tasks", "{model}", "{method}", "{recipe}"),
    params:
        suite=json.dumps(pb_suite.task_specs(config), sort_keys=True),
        seed=config["seed"],
        data_dir=DATA_DIR_ARG,
        backend=model_backend,
        runtime=tasks_runtime,
        measurements=lambda w: RuntimeSetting(paths.measurements("tasks", w.model, w.method, w.recipe)),
    conda:
        MODEL_ENV
    container:
        MODEL_IMAGE
    shell:
        "prunebench tasks --model {input.model} --suite-json {params.suite:q} {params.data_dir} "
        "--seed {params.seed} --backend {params.backend} {params.runtime} --measurements {params.measurements} "
        "--out-dir {output} 2> {log}"
