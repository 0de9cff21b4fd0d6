from pathlib import Path

from setuptools import find_packages, setup

about = {}
exec((Path(__file__).parent / "spacy_rnn" / "about.py").read_text(), about)

setup(
    name=about["__title__"],
    version=about["__version__"],
    description=about["__summary__"],
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["spacy_rnn", "spacy_rnn.*"]),
    package_data={"spacy_rnn": ["py.typed"]},
    python_requires=">=3.9",
    install_requires=[
        "spacy>=3.8.0,<3.9.0",
        # Setting ranges are checked by confection's validation (spacy_rnn.models.types).
        "confection>=1.3.4,<2.0.0",
        "thinc>=8.3.0,<8.4.0",
        "torch>=2.1.0,<2.14.0",
        "numpy>=1.19.0",
        "typer>=0.9.0",
        "tqdm>=4.38.0",
        "wasabi>=0.9.1,<1.2.0",
    ],
    extras_require={
        # --engine ray of `spacy_rnn annotate`
        "ray": ["ray[data]>=2.51.0"],  # map_batches(compute=ActorPoolStrategy(size=...)) without a deprecation warning
    },
    entry_points={
        "spacy_factories": [
            "rnn_tagger = spacy_rnn.pipeline.tagger:make_rnn_tagger",
            "most_frequent_tagger = spacy_rnn.classic.pipes:make_most_frequent_tagger",
            "hmm_tagger = spacy_rnn.classic.pipes:make_hmm_tagger",
            "rnn_ner = spacy_rnn.pipeline.ner:make_rnn_ner",
            "rnn_lm = spacy_rnn.pipeline.lm:make_rnn_lm",
            "rnn_textcat = spacy_rnn.pipeline.textcat:make_rnn_textcat",
            "rnn_textcat_multilabel = spacy_rnn.pipeline.textcat:make_rnn_textcat_multilabel",
        ],
        "spacy_architectures": [
            "spacy_rnn.RNNEncoder.v1 = spacy_rnn.models.architectures:build_rnn_encoder_v1",
            "spacy_rnn.RNNEncoder.v2 = spacy_rnn.models.architectures:build_rnn_encoder_v2",
            "spacy_rnn.Tok2VecListener.v1 = spacy_rnn.models.architectures:build_tok2vec_listener_v1",
            "spacy_rnn.RNNTagger.v1 = spacy_rnn.models.architectures:build_rnn_tagger_v1",
            "spacy_rnn.RNNEntityRecognizer.v1 = spacy_rnn.models.architectures:build_rnn_entity_recognizer_v1",
            "spacy_rnn.RNNTextClassifier.v1 = spacy_rnn.models.architectures:build_rnn_text_classifier_v1",
            "spacy_rnn.RNNLanguageModel.v1 = spacy_rnn.models.architectures:build_rnn_language_model_v1",
        ],
        "spacy_callbacks": [
            "spacy_rnn.init_word_vocabularies.v1 = spacy_rnn.pipeline.vocabulary:make_init_word_vocabularies",
            "spacy_rnn.quantize_int8.v1 = spacy_rnn.pipeline.quantize:make_quantize_int8",
            "spacy_rnn.fixed_mmap_threshold.v1 = spacy_rnn.pipeline.heap:make_fixed_mmap_threshold",
            "spacy_rnn.fixed_mmap_threshold.v2 = spacy_rnn.pipeline.heap:make_fixed_mmap_threshold_v2",
        ],
        "spacy_cli": [
            "rnn_lm = spacy_rnn.cli.lm:setup_lm_cli",
            "rnn_annotate = spacy_rnn.cli.annotate:setup_annotate_cli",
            "rnn_quantize = spacy_rnn.cli.quantize:setup_quantize_cli",
        ],
    },
)
