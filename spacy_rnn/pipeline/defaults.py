"""The default encoder block of rnn_tagger's and rnn_ner's default model configs:
spacy_rnn.RNNEncoder.v2 with its own defaults, which are those of configs/tagger.cfg."""

DEFAULT_ENCODER_CONFIG = """
[model.encoder]
@architectures = "spacy_rnn.RNNEncoder.v2"
cell = "lstm"
width = 128
depth = 2
bidirectional = true
dropout = 0.33
word_attr = "NORM"
word_width = 96
vocab_size = 30000
min_word_freq = 2
word_dropout = 0.1
attrs = ["PREFIX", "SUFFIX", "SHAPE"]
rows = [2000, 10000, 1000]
embed_widths = [16, 48, 16]
char_width = 32
char_filters = 64
max_word_chars = 20
n_chars = 1024
feed_forward = false
output_gate = false
short_conv = false
"""
