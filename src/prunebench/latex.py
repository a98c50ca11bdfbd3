"""The LaTeX paper compiled to PDF, where a TeX engine is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .io import InputError, atomic_path


TEX_ENGINE = "pdflatex"
REPRODUCIBLE_DATES = {"SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}


def compile_pdf(tex: str | Path, out_pdf: str | Path, timeout: float = 300, log_out: str | Path | None = None) -> None:
    """Compile the LaTeX paper twice (references settle on the second pass) in a scratch directory
    beside it, so figures resolve by their relative paths; the PDF replaces `out_pdf` only whole.

    No shell escape and no interaction: the engine stops at the first error, which is raised with
    the last lines the engine printed. The PDF's dates are pinned (SOURCE_DATE_EPOCH), so the same
    paper gives the same bytes.
    """
    tex = Path(tex).resolve()
    engine = shutil.which(TEX_ENGINE)
    if engine is None:
        raise InputError(f"{tex}: no {TEX_ENGINE} on PATH to compile it (Debian: texlive-latex-recommended)")
    with tempfile.TemporaryDirectory(prefix=".latex.", dir=tex.parent) as scratch:
        command = [engine, "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error",
                   f"-output-directory={scratch}", tex.name]
        for _ in range(2):
            result = subprocess.run(command, cwd=tex.parent, capture_output=True, text=True, timeout=timeout,
                                    errors="replace", env={**os.environ, **REPRODUCIBLE_DATES})
            if result.returncode != 0:
                tail = "\n".join(result.stdout.splitlines()[-15:])
                raise InputError(f"{tex}: {TEX_ENGINE} failed (exit {result.returncode}):\n{tail}")
        with atomic_path(out_pdf, suffix=".pdf") as tmp:
            shutil.copyfile(Path(scratch) / (tex.stem + ".pdf"), tmp)
        if log_out is not None:  # the engine's log (overfull boxes and all), where a caller wants it
            shutil.copyfile(Path(scratch) / (tex.stem + ".log"), log_out)
