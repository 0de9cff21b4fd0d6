"""The process-wide heap policy (spacy_rnn/runtime.py): when it sets glibc's
mmap threshold, when it leaves it alone, and that the shared-encoder config applies it."""
import platform

from pathlib import Path

import pytest
import spacy
from spacy.util import load_config, registry
from thinc.api import Config

from spacy_rnn import runtime
from spacy_rnn.pipeline import heap

REPO = Path(__file__).resolve().parent.parent

ON_GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.fixture
def fresh_policy(monkeypatch):
    """As in a process that has not applied the policy yet, without glibc's own settings."""
    monkeypatch.setattr(runtime, "_heap_policy_pid", None)
    for name in (runtime.MMAP_ENV_VAR, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)


def test_threshold_setting(monkeypatch):
    monkeypatch.delenv(runtime.MMAP_ENV_VAR, raising=False)
    assert runtime.configured_mmap_threshold() == runtime.DEFAULT_MMAP_THRESHOLD
    monkeypatch.setenv(runtime.MMAP_ENV_VAR, "1048576")
    assert runtime.configured_mmap_threshold() == 1048576
    for bad in ("4MB", "-1"):
        monkeypatch.setenv(runtime.MMAP_ENV_VAR, bad)
        with pytest.raises(ValueError, match=runtime.MMAP_ENV_VAR):
            runtime.configured_mmap_threshold()


@pytest.mark.skipif(not ON_GLIBC, reason="glibc's malloc only")
def test_policy_sets_the_threshold_once_per_process(fresh_policy, monkeypatch):
    calls = []
    real_cdll = runtime.ctypes.CDLL

    class RecordingLibc:
        def __init__(self, name):
            self.libc = real_cdll(name)

        def mallopt(self, param, value):
            calls.append((param, value))
            return self.libc.mallopt(param, value)

    monkeypatch.setattr(runtime.ctypes, "CDLL", RecordingLibc)
    assert runtime.apply_heap_policy()
    assert runtime.apply_heap_policy()
    assert calls == [(-3, runtime.DEFAULT_MMAP_THRESHOLD)]  # M_MMAP_THRESHOLD, once


@pytest.mark.parametrize("policy,env", [
    ("apply_heap_policy", {runtime.MMAP_ENV_VAR: "0"}),
    ("apply_heap_policy", {"MALLOC_MMAP_THRESHOLD_": "65536"}),
    ("apply_heap_policy", {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}),
    ("keep_freed_memory", {"MALLOC_TRIM_THRESHOLD_": "65536"}),
    ("keep_freed_memory", {"MALLOC_MMAP_THRESHOLD_": "65536"}),
    ("keep_freed_memory", {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=65536"}),
])
def test_policies_leave_malloc_alone_when_told_or_set_by_the_user(fresh_policy, monkeypatch, policy, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: pytest.fail("mallopt must not be called"))
    assert not getattr(runtime, policy)()


def test_the_shared_encoder_config_applies_the_policy_at_initialize(monkeypatch):
    """configs/parser_tagger_rnn.cfg, the config whose training grew without bound, names the
    callback in [initialize.after_init], and the callback applies the policy."""
    config = load_config(REPO / "configs" / "parser_tagger_rnn.cfg", interpolate=False)
    assert config["initialize"]["after_init"] == {"@callbacks": "spacy_rnn.fixed_mmap_threshold.v1"}
    applied = []
    monkeypatch.setattr(heap, "apply_heap_policy", lambda: applied.append(True))
    nlp = spacy.blank("en")
    callback = registry.resolve({"cb": config["initialize"]["after_init"]})["cb"]
    assert callback(nlp) is nlp
    assert applied == [True]


@pytest.mark.skipif(not ON_GLIBC, reason="glibc's malloc only")
def test_policy_takes_a_threshold_that_the_environment_overrides(fresh_policy, monkeypatch):
    calls = []
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: type("Libc", (), {
        "mallopt": staticmethod(lambda param, value: calls.append((param, value)) or 1)})())
    assert runtime.apply_heap_policy(65536)
    monkeypatch.setattr(runtime, "_heap_policy_pid", None)
    monkeypatch.setenv(runtime.MMAP_ENV_VAR, "131072")
    assert runtime.apply_heap_policy(65536)
    assert calls == [(-3, 65536), (-3, 131072)]


def test_the_v2_callback_applies_the_threshold_of_the_config(monkeypatch):
    config = Config().from_str("""
[initialize]
[initialize.after_init]
@callbacks = "spacy_rnn.fixed_mmap_threshold.v2"
threshold = 65536
""")
    applied = []
    monkeypatch.setattr(heap, "apply_heap_policy", lambda threshold=None: applied.append(threshold))
    nlp = spacy.blank("en")
    assert registry.resolve({"cb": config["initialize"]["after_init"]})["cb"](nlp) is nlp
    assert applied == [65536]


@pytest.mark.skipif(not ON_GLIBC, reason="glibc's malloc only")
def test_keep_freed_memory_sets_the_tunables_of_the_readme_through_mallopt(fresh_policy, monkeypatch):
    """The same two settings as GLIBC_TUNABLES=KEEP_FREED_TUNABLES, the line the README gives."""
    calls = []
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: type("Libc", (), {
        "mallopt": staticmethod(lambda param, value: calls.append((param, value)) or 1)})())
    assert runtime.keep_freed_memory()
    assert calls == [(-3, 33554432), (-1, 1000000000)]  # M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GB
    assert f"GLIBC_TUNABLES={runtime.KEEP_FREED_TUNABLES}" in (REPO / "README.md").read_text()
