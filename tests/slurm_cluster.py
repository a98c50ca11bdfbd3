"""A real single-node SLURM cluster on localhost for tests (Debian slurm-wlm and munge, run as root).

Accounting is off, so job states come from squeue. The node advertises GPUs of type h100 backed by
character devices, so a job that asks for a GPU is scheduled as on a GPU cluster (and runs on the
CPU), and it advertises the CPUs and memory of a GPU node (`config_overrides`), so the shipped
profile's requests are schedulable unchanged.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol")
# srun inside a batch job reads the configuration from its default place (slurmd does not pass
# SLURM_CONF on), so the test cluster's files go there, marked, and never over someone else's.
CONF_DIR = Path("/etc/slurm")
MARKER = "# prunebench test cluster"


def unavailable() -> str | None:
    """Why a cluster cannot start here, or None."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "the SLURM executor plugin is not installed (it is in locks/cpu.txt, not locks/gpu.txt)"
    missing = [b for b in BINARIES if not shutil.which(b) and not Path("/usr/sbin", b).exists()]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing; Debian: slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting slurmctld and slurmd needs root"
    conf = CONF_DIR / "slurm.conf"
    if conf.exists() and not conf.read_text().startswith(MARKER):
        return f"{conf} belongs to a real cluster; the test cluster will not replace it"
    return None


def _conf(state: Path, cpus: int, memory_mb: int, gpus: int) -> str:
    host = socket.gethostname()
    return f"""{MARKER}
ClusterName=prunebench-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmUser=root
SlurmdUser=root
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
GresTypes=gpu
MinJobAge=300
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:h100:{gpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    """Start with `start()`, stop with `stop()`; `env` carries SLURM_CONF for sbatch and squeue."""

    def __init__(self, state: Path, cpus: int = 32, memory_mb: int = 512_000, gpus: int = 2):
        self.state = state
        self.cpus, self.memory_mb, self.gpus = cpus, memory_mb, gpus
        self.conf = CONF_DIR / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self._started: list[str] = []

    def start(self, timeout: float = 60) -> None:
        (self.state / "ctld").mkdir(parents=True, exist_ok=True)
        (self.state / "d").mkdir(parents=True, exist_ok=True)
        devices = [self.state / f"gpu{i}" for i in range(self.gpus)]
        for device in devices:
            if not device.exists():
                subprocess.run(["mknod", str(device), "c", "1", "3"], check=True)
        CONF_DIR.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(_conf(self.state, self.cpus, self.memory_mb, self.gpus))
        (CONF_DIR / "gres.conf").write_text(MARKER + "\n" + "".join(f"Name=gpu Type=h100 File={d}\n" for d in devices))
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([f"/usr/sbin/{daemon}", "-f", str(self.conf)], check=True, env=self.env)
            self._started.append(daemon)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env)
            if out.returncode == 0 and out.stdout.strip() in ("idle", "mixed", "allocated"):
                return
            time.sleep(1)
        raise RuntimeError(f"SLURM did not come up in {timeout:.0f} s; see {self.state}/slurmctld.log")

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True, env=self.env)
        for daemon in reversed(self._started):
            pid_file = self.state / f"{daemon}.pid"
            if pid_file.exists():
                subprocess.run(["kill", pid_file.read_text().strip()], capture_output=True)
        self._started.clear()
        for name in ("slurm.conf", "gres.conf"):
            path = CONF_DIR / name
            if path.exists() and path.read_text().startswith(MARKER):
                path.unlink()

    def squeue(self) -> list[tuple[str, str, str]]:
        """(job id, comment, state) of every job; Snakemake's comment names the rule."""
        out = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], capture_output=True, text=True, env=self.env)
        return [tuple(line.split("|", 2)) for line in out.stdout.splitlines()]
