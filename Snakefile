# prunebench: every table and figure of "Think Before You Prune" and of the study "From LLMs to
# LRMs" (its targets carry the prefix lrm_) as Snakemake targets.
#
#   snakemake report                                  the embedded default (config/config.yaml)
#   snakemake table2 --configfile config/paper.yaml   one table of the paper's grid
#
# Stages, one rule file each, in the order data flows through them.

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless --configfile names another run: a config file describes a whole
# run, so it replaces the default rather than being merged into it (--config still overrides keys).
# Snakemake's public --replace-workflow-config would also drop the default where only --config is
# given; `workflow.overwrite_configfiles` is pinned by tests/test_scheduling.py instead.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


include: "rules/common.smk"


# `snakemake --report report.html`: Snakemake's own report of the run, tables and figures captioned.
report: "report/workflow.rst"
wildcard_constraints:
    model="|".join(MODELS) or "^$",
    dataset=r"[a-z0-9_]+",
    bench=r"[a-z0-9_]+",
    recipe=r"[A-Za-z0-9_]+",
    method=f"{paths.DENSE}|{CELL_PATTERN}",


include: "rules/data.smk"
include: "rules/generate.smk"
include: "rules/grade.smk"
include: "rules/calibrate.smk"
include: "rules/prune.smk"
include: "rules/recover.smk"
include: "rules/evaluate.smk"
include: "rules/tasks.smk"
include: "rules/speed.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report.input,
