"""lm-eval's own functions for the tasks here, so that prompts and metrics stay lm-eval's.

NLTK's Punkt parameters, which IFEval's checks need and NLTK would download, are put on NLTK's
search path first (the copy in ../nltk_data, whose README says where it comes from).
"""

from pathlib import Path

import nltk

NLTK_DIR = str(Path(__file__).resolve().parent.parent / "nltk_data")
if NLTK_DIR not in nltk.data.path:
    nltk.data.path.insert(0, NLTK_DIR)

from lm_eval.tasks.ifeval.utils import agg_inst_level_acc, process_results  # noqa: E402
from lm_eval.tasks.truthfulqa.utils import process_results_mc2  # noqa: E402
from lm_eval.tasks.winogrande.preprocess_winogrande import doc_to_choice, doc_to_target, doc_to_text  # noqa: E402

__all__ = ["agg_inst_level_acc", "process_results", "process_results_mc2", "doc_to_choice", "doc_to_target",
           "doc_to_text"]
