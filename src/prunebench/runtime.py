"""Rule params that change how a job runs, not what it writes (a batch size, a worker count, the
config a nested run reads).

Snakemake reruns a job when one of its params changes (the params rerun trigger), comparing the
params it recorded with the job's output. It records only values it can represent (strings,
numbers, lists and mappings of them) and skips any other object, so a param held in a
`RuntimeSetting` is never compared: changing it reruns nothing, while the shell command still reads
it as text. This relies on Snakemake's behaviour, not on an interface it documents:
tests/test_scheduling.py pins it, and fails should an upgrade start comparing such values.
"""

from __future__ import annotations


class RuntimeSetting:
    """A param value the params rerun trigger does not compare; str() gives it to the command."""

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return str(self.value)
