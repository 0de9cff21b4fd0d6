__title__ = "spacy-rnn"
__version__ = "0.1.0"
__summary__ = "Recurrent sequence models (RNN, LSTM, GRU) as spaCy pipeline components"
