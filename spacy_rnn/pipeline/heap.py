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

from ..runtime import apply_heap_policy


@registry.callbacks("spacy_rnn.fixed_mmap_threshold.v1")
def make_fixed_mmap_threshold() -> Callable[[Language], Language]:
    """An [initialize.after_init] callback: apply the heap policy to the process
    that initializes (and then trains) the pipeline."""

    def fixed_mmap_threshold(nlp: Language) -> Language:
        apply_heap_policy()
        return nlp

    return fixed_mmap_threshold


@registry.callbacks("spacy_rnn.fixed_mmap_threshold.v2")
def make_fixed_mmap_threshold_v2(threshold: int = 4 * 2**20) -> Callable[[Language], Language]:
    """As v1, with the threshold (bytes) in the config. configs/tagger_mingru.cfg
    uses 64 KiB: its training (minGRU with output gates) grew by about 1 MB a
    step with glibc's dynamic threshold and with 4 MiB (the blocks that pile up
    are smaller: per-batch activations of 0.1 to 2 MB), until two such
    trainings ran the machine out of memory; with 64 KiB it stayed flat
    (450 MB to 520 MB over 750 steps)."""

    def fixed_mmap_threshold(nlp: Language) -> Language:
        apply_heap_policy(threshold)
        return nlp

    return fixed_mmap_threshold
