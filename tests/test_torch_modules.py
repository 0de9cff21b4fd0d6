import pytest
import torch

from spacy_rnn.models.pytorch import CharCNN, HashEmbedding, RecurrentEncoder, TokenEncoder, packing_order


def make_encoder(cell="lstm", bidirectional=True, seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return TokenEncoder(
        n_words=20,
        word_width=3,
        feature_rows=[100, 50],
        feature_widths=[8, 4],
        n_chars=64,
        char_width=4,
        char_filters=6,
        cell=cell,
        hidden_width=5,
        n_layers=2,
        bidirectional=bidirectional,
        dropout_prob=dropout,
        word_dropout_prob=0.0,
    ).eval()


def make_inputs(lengths, seed=1):
    g = torch.Generator().manual_seed(seed)
    n = sum(lengths)
    word_ids = torch.randint(0, 20, (n,), generator=g)
    hashes = torch.randint(0, 2**31, (n, 2, 4), generator=g)
    code_points = torch.randint(1, 200, (7, 5), generator=g)
    word_index = torch.randint(0, 7, (n,), generator=g)
    return word_ids, hashes, word_index, code_points, torch.tensor(lengths, dtype=torch.int64)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mingru", "minlstm"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_output_shape(cell, bidirectional):
    encoder = make_encoder(cell, bidirectional)
    out = encoder(*make_inputs([3, 0, 5]))
    assert out.shape == (8, 10 if bidirectional else 5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_sequence_alone_equals_sequence_in_batch(cell):
    encoder = make_encoder(cell)
    word_ids, hashes, word_index, code_points, lengths = make_inputs([4, 9, 1, 6])
    with torch.no_grad():
        batch_out = encoder(word_ids, hashes, word_index, code_points, lengths)
        # second sequence (tokens 4..12) on its own
        alone = encoder(word_ids[4:13], hashes[4:13], word_index[4:13], code_points, torch.tensor([9]))
    torch.testing.assert_close(batch_out[4:13], alone, rtol=1e-5, atol=1e-6)


def test_same_seed_same_output_other_seed_differs():
    inputs = make_inputs([3, 4])
    with torch.no_grad():
        a = make_encoder(seed=3)(*inputs)
        b = make_encoder(seed=3)(*inputs)
        c = make_encoder(seed=4)(*inputs)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_backward_reaches_all_parameters():
    encoder = make_encoder().train()
    encoder(*make_inputs([3, 4])).sum().backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_dropout_is_active_in_training_only():
    encoder = make_encoder(dropout=0.5)
    inputs = make_inputs([6, 6])
    with torch.no_grad():
        assert torch.equal(encoder(*inputs), encoder(*inputs))
        encoder.train()
        assert not torch.equal(encoder(*inputs), encoder(*inputs))


def test_unknown_cell_is_rejected():
    with pytest.raises(ValueError, match="Unknown recurrent cell 'transformer'"):
        RecurrentEncoder(
            cell="transformer", input_width=3, hidden_width=3, n_layers=1,
            bidirectional=False, dropout_prob=0.0,
        )


def test_packing_order_is_time_major_longest_first():
    index, batch_sizes = packing_order(torch.tensor([2, 0, 3]))
    # flat positions: seq0 = 0,1; seq2 = 2,3,4. Longest (seq2) first at each step.
    assert index.tolist() == [2, 0, 3, 1, 4]
    assert batch_sizes.tolist() == [2, 2, 1]


def test_all_empty_batch():
    encoder = make_encoder()
    out = encoder(*make_inputs([0, 0]))
    assert out.shape == (0, 10)


def test_hash_embedding_and_char_cnn_shapes():
    embed = HashEmbedding(n_rows=[10, 20], widths=[3, 4])
    assert embed(torch.randint(0, 1000, (5, 2, 4))).shape == (5, 7)
    chars = CharCNN(n_chars=16, char_width=3, n_filters=7)
    code_points = torch.tensor([[5, 6, 0], [300, 0, 0]])
    assert chars(code_points).shape == (2, 7)
    with pytest.raises(ValueError, match="one width per table"):
        HashEmbedding(n_rows=[10], widths=[3, 4])


def test_char_cnn_grouped_by_length_equals_one_padded_batch():
    """Encoding words in groups by length (the fast path) gives what padding all of them to the longest gives."""
    from spacy_rnn.models.pytorch.embeddings import CharCNN

    torch.manual_seed(0)
    cnn = CharCNN(n_chars=50, char_width=4, n_filters=6)
    lengths = [0, 1, 3, 6, 7, 10, 11, 20, 5, 2]
    code_points = torch.zeros(len(lengths), 20, dtype=torch.long)
    for row, length in enumerate(lengths):
        code_points[row, :length] = torch.randint(1, 300, (length,))
    grouped = cnn(code_points)
    assert torch.equal(grouped, cnn._encode(code_points))
    assert grouped[0].abs().max().item() == 0.0  # a word with no characters
    grouped.sum().backward()  # and it trains
    assert cnn.conv.weight.grad.abs().sum().item() > 0


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_char_cnn_equals_conv1d_values_and_gradients(kernel_size):
    """The windowed matrix product computes what nn.Conv1d over the transposed embeddings does,
    padding masked before the max, and gives its weights the same gradients."""
    torch.manual_seed(0)
    cnn = CharCNN(n_chars=40, char_width=5, n_filters=7, kernel_size=kernel_size)
    lengths = [1, 2, 4, 7, 3]
    code_points = torch.zeros(len(lengths), 7, dtype=torch.long)
    for row, length in enumerate(lengths):
        code_points[row, :length] = torch.randint(1, 300, (length,))
    rows = torch.where(code_points > 0, 1 + (code_points - 1) % 39, 0)
    reference = cnn.conv(cnn.embed(rows).transpose(1, 2)).masked_fill((rows == 0).unsqueeze(1), float("-inf"))
    expected = reference.max(dim=2).values
    expected.sum().backward()
    expected_grads = [p.grad.clone() for p in (cnn.conv.weight, cnn.conv.bias, cnn.embed.weight)]
    cnn.zero_grad()
    got = cnn._encode(code_points)
    got.sum().backward()
    assert torch.allclose(got, expected, atol=1e-6)
    for p, want in zip((cnn.conv.weight, cnn.conv.bias, cnn.embed.weight), expected_grads):
        assert torch.allclose(p.grad, want, atol=1e-5)
    with pytest.raises(ValueError, match="must be odd"):
        CharCNN(n_chars=40, char_width=5, n_filters=7, kernel_size=2)


def test_dropout_keeps_one_minus_p_scaled_and_passes_the_same_mask_back():
    from spacy_rnn.models.pytorch.dropout import Dropout

    torch.manual_seed(0)
    dropout = Dropout(0.25)
    x = torch.ones(400, 300, requires_grad=True)
    y = dropout(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.01  # each value kept with probability 1 - p
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))  # and scaled as nn.Dropout does
    y.backward(torch.full_like(y, 2.0))
    assert torch.equal(x.grad, y.detach() * 2.0)  # the gradient goes through the same mask
    dropout.eval()
    assert dropout(x) is x
    assert Dropout(0.0).train()(x) is x
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))


def test_fitted_word_table_trains_as_the_full_one():
    """Rows past the vocabulary are never read: a table cut to the rows in use
    (fit_word_rows) gives the same outputs, gradients and training steps,
    and cutting it draws no random numbers (dropout masks stay the same)."""
    full, fitted = make_encoder(dropout=0.3).train(), make_encoder(dropout=0.3).train()
    fitted.fit_word_rows(8)
    assert fitted.words.weight.shape == (8, 3) and torch.equal(fitted.words.weight, full.words.weight[:8])
    inputs = list(make_inputs([4, 2, 5]))
    inputs[0] = inputs[0] % 8  # the vocabulary's rows only
    optimizers = [torch.optim.Adam(m.parameters(), lr=0.01) for m in (full, fitted)]
    for step in range(3):
        outputs = []
        for model, optimizer in zip((full, fitted), optimizers):
            torch.manual_seed(step)
            optimizer.zero_grad()
            out = model(*inputs)
            out.pow(2).sum().backward()
            optimizer.step()
            outputs.append(out)
        torch.testing.assert_close(outputs[0], outputs[1])
    torch.testing.assert_close(full.words.weight[:8], fitted.words.weight)
    assert torch.equal(full.words.weight[8:], make_encoder().words.weight[8:])  # never updated


def test_word_table_takes_the_saved_size_when_loading_and_grows_by_drawing_rows():
    saved = make_encoder()
    saved.fit_word_rows(5)
    loaded = make_encoder(seed=3)  # 20 rows, as built from the config
    loaded.load_state_dict(saved.state_dict())
    assert torch.equal(loaded.words.weight, saved.words.weight)
    loaded.fit_word_rows(9)
    assert torch.equal(loaded.words.weight[:5], saved.words.weight)
    assert loaded.words.weight.shape == (9, 3) and loaded.words.weight.requires_grad
    assert loaded.words.weight[5:].abs().max() <= 0.1 and loaded.words.weight[5:].abs().min() > 0
    with pytest.raises(ValueError, match="at least the unknown word's row"):
        loaded.fit_word_rows(0)


@pytest.mark.parametrize("cell", ["lstm", "mingru"])
def test_embedding_parts_are_freed_before_the_stack_runs(cell):
    """The word, feature and character embeddings are concatenated and let go
    before the recurrent stack runs, not held through it (peak memory)."""
    import weakref

    encoder = make_encoder(cell)
    made, alive_in_stack = [], []
    for part in (encoder.words, encoder.features, encoder.chars):
        part.register_forward_hook(lambda module, args, output: made.append(weakref.ref(output)))
    encoder.encoder.register_forward_pre_hook(lambda module, args: alive_in_stack.extend(ref() is not None for ref in made))
    with torch.no_grad():
        encoder(*make_inputs([3, 5]))
    assert len(made) == 3 and alive_in_stack == [False, False, False]
