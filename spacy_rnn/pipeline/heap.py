"""The [initialize.after_init] callback that gives a training process a fixed
glibc mmap threshold (spacy_rnn.runtime.apply_heap_policy).

The shared-encoder config (configs/parser_tagger_rnn.cfg: spaCy's tagger,
morphologizer and parser listening to a spacy_rnn encoder) names it: without
it, `spacy train` of that config grew by 5 to 11 MB a step here until the
machine ran out of memory; with it, by under 1 MB a step, at about the same
speed (scripts/benchmark_memory.py, metrics/benchmark_memory.json). The
setting is process-wide, so it is opt-in per config: pipelines of
spacy-rnn's own components did not grow so and do not name it.
"""
from typing import Callable

from spacy.language import Language
from spacy.util import registry

from ..runtime import DEFAULT_MMAP_THRESHOLD, apply_heap_policy


@registry.callbacks("spacy_rnn.fixed_mmap_threshold.v1")
def make_fixed_mmap_threshold() -> Callable[[Language], Language]:
    """An [initialize.after_init] callback: apply the heap policy to the process
    that initializes (and then trains) the pipeline."""

    def fixed_mmap_threshold(nlp: Language) -> Language:
        apply_heap_policy()
        return nlp

    return fixed_mmap_threshold


@registry.callbacks("spacy_rnn.fixed_mmap_threshold.v2")
def make_fixed_mmap_threshold_v2(threshold: int = DEFAULT_MMAP_THRESHOLD) -> Callable[[Language], Language]:
    """As v1, with the threshold (bytes) in the config. Smaller thresholds map
    smaller blocks: flatter memory for a process whose growth comes from many
    mid-sized blocks, at a cost in speed (every such block is mapped, zeroed
    and unmapped each step). scripts/benchmark_memory.py measures a setting
    against glibc's dynamic threshold for any config."""

    def fixed_mmap_threshold(nlp: Language) -> Language:
        apply_heap_policy(threshold)
        return nlp

    return fixed_mmap_threshold
