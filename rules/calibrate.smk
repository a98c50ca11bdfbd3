# One calibration set per recipe: C4 windows, MathR gold solutions, SGR, SSGR (eq. 1), ...


rule calibrate:
    input:
        unpack(calibration_inputs),
    output:
        paths.calibration("{model}", "{recipe}"),
    priority: LIGHT
    log:
        log_path("calibrate", "{model}", "{recipe}"),
    params:
        spec=recipe_spec,
        sources=calibration_args,
        sequences=config["calibration"]["sequences"],
        max_length=config["calibration"]["max_length"],
        seed=config["seed"],
    conda:
        CPU_ENV
    container:
        CPU_IMAGE
    shell:
        "prunebench calibrate --model {input.model} --recipe {wildcards.recipe} --spec {params.spec:q} "
        "--sequences {params.sequences} --max-length {params.max_length} --seed {params.seed} "
        "{params.sources} --out {output} 2> {log}"
