import itertools

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_rnn.models.crf import allowed_transitions, forward_backward, log_mask, tag_names, viterbi

NAMES = tag_names(["LOC", "PER"], "BIO")  # O B-LOC I-LOC B-PER I-PER


def constrained_scores(rng, names=NAMES):
    start_ok, pair_ok, end_ok = allowed_transitions(names)
    k = len(names)
    return (
        rng.normal(size=k) + log_mask(start_ok),
        rng.normal(size=(k, k)) + log_mask(pair_ok),
        rng.normal(size=k) + log_mask(end_ok),
    )


def path_score(emissions, path, start, transitions, end):
    score = start[path[0]] + end[path[-1]] + sum(emissions[t, tag] for t, tag in enumerate(path))
    return score + sum(transitions[a, b] for a, b in zip(path, path[1:]))


def brute_force(emissions, length, start, transitions, end):
    """All paths enumerated: log partition, best path, unary and pair marginals."""
    k = emissions.shape[1]
    paths = list(itertools.product(range(k), repeat=length))
    scores = numpy.array([path_score(emissions, p, start, transitions, end) for p in paths])
    log_z = numpy.logaddexp.reduce(scores)
    probs = numpy.exp(scores - log_z)
    unary = numpy.zeros((length, k))
    pair = numpy.zeros((k, k))
    for p, prob in zip(paths, probs):
        for t, tag in enumerate(p):
            unary[t, tag] += prob
        for a, b in zip(p, p[1:]):
            pair[a, b] += prob
    return log_z, paths[int(scores.argmax())], unary, pair


def test_forward_backward_and_viterbi_match_brute_force():
    rng = numpy.random.default_rng(0)
    lengths = numpy.array([1, 4, 3])
    emissions = rng.normal(size=(3, 4, len(NAMES)))
    start, transitions, end = constrained_scores(rng)
    log_z, unary, pair, first, last = forward_backward(numpy, emissions, lengths, start, transitions, end)
    paths, best = viterbi(numpy, emissions, lengths, start, transitions, end)
    total_pair = numpy.zeros_like(pair)
    for b, n in enumerate(lengths):
        bf_log_z, bf_path, bf_unary, bf_pair = brute_force(emissions[b], n, start, transitions, end)
        assert log_z[b] == pytest.approx(bf_log_z, abs=1e-9)
        assert paths[b].tolist() == list(bf_path)
        assert best[b] == pytest.approx(path_score(emissions[b], bf_path, start, transitions, end))
        numpy.testing.assert_allclose(unary[b, :n], bf_unary, atol=1e-9)
        assert numpy.all(unary[b, n:] == 0)
        total_pair += bf_pair
    numpy.testing.assert_allclose(pair, total_pair, atol=1e-9)
    numpy.testing.assert_allclose(first, unary[:, 0].sum(0), atol=1e-12)


def test_observed_path_gives_its_own_score():
    rng = numpy.random.default_rng(1)
    emissions = rng.normal(size=(1, 4, len(NAMES)))
    start, transitions, end = constrained_scores(rng)
    gold = [1, 2, 0, 3]  # B-LOC I-LOC O B-PER
    allowed = numpy.zeros(emissions.shape, dtype=bool)
    allowed[0, numpy.arange(4), gold] = True
    log_z, unary, *_ = forward_backward(numpy, emissions, numpy.array([4]), start, transitions, end, allowed)
    assert log_z[0] == pytest.approx(path_score(emissions[0], gold, start, transitions, end))
    numpy.testing.assert_allclose(unary[0], numpy.eye(len(NAMES))[gold], atol=1e-12)


def test_gradient_of_log_partition_is_the_marginals():
    """Finite differences of log Z against the expected counts."""
    rng = numpy.random.default_rng(2)
    emissions = rng.normal(size=(1, 3, len(NAMES)))
    start, transitions, end = constrained_scores(rng)
    lengths = numpy.array([3])
    _, unary, pair, first, _ = forward_backward(numpy, emissions, lengths, start, transitions, end)
    eps = 1e-6
    for (i, j) in [(0, 1), (1, 2), (3, 4), (2, 0)]:
        bumped = transitions.copy()
        bumped[i, j] += eps
        up = forward_backward(numpy, emissions, lengths, start, bumped, end)[0][0]
        down = forward_backward(numpy, emissions, lengths, start, transitions, end)[0][0]
        assert (up - down) / eps == pytest.approx(pair[i, j], abs=1e-5)
    bumped = emissions.copy()
    bumped[0, 1, 2] += eps
    up = forward_backward(numpy, bumped, lengths, start, transitions, end)[0][0]
    down = forward_backward(numpy, emissions, lengths, start, transitions, end)[0][0]
    assert (up - down) / eps == pytest.approx(unary[0, 1, 2], abs=1e-5)


def is_valid(tags, scheme):
    previous = "O"
    for tag in tags:
        if tag[0] in "IL" and (previous[0] not in "BI" or previous[2:] != tag[2:]):
            return False
        if scheme == "BILUO" and previous[0] in "BI" and tag[0] not in "IL":
            return False
        previous = tag
    return scheme == "BIO" or previous[0] in "OLU"


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    scheme=st.sampled_from(["BIO", "BILUO"]),
    scale=st.floats(0.1, 100.0),
)
def test_decoded_sequences_are_always_valid(seed, lengths, scheme, scale):
    names = tag_names(["LOC", "PER", "ORG"], scheme)
    rng = numpy.random.default_rng(seed)
    emissions = rng.normal(size=(len(lengths), max(lengths), len(names))) * scale
    # Make the forbidden tags tempting: large emission scores on I- and L- tags.
    for k, name in enumerate(names):
        if name[0] in "IL":
            emissions[:, :, k] += scale
    start, transitions, end = constrained_scores(rng, names)
    paths, scores = viterbi(numpy, emissions, numpy.array(lengths), start, transitions, end)
    for path, n in zip(paths, lengths):
        assert len(path) == n
        assert is_valid([names[i] for i in path], scheme)
    assert numpy.all(numpy.isfinite(scores))


def test_allowed_transitions_bio():
    start_ok, pair_ok, end_ok = allowed_transitions(NAMES)
    index = {name: i for i, name in enumerate(NAMES)}
    assert not start_ok[index["I-LOC"]]
    assert not pair_ok[index["O"], index["I-LOC"]]
    assert not pair_ok[index["B-PER"], index["I-LOC"]]
    assert pair_ok[index["B-LOC"], index["I-LOC"]] and pair_ok[index["I-LOC"], index["I-LOC"]]
    assert pair_ok[index["I-LOC"], index["B-LOC"]] and end_ok.all()
