"""The CPU facts read from /proc/cpuinfo (models/pytorch/cpu.py): the first processor's flags and model name."""
from spacy_rnn.models.pytorch import cpu

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
vmx flags\t: vnmi preemption_timer
flags\t\t: fpu avx2 avx512f amx_int8

processor\t: 1
model name\t: another
flags\t\t: fpu
"""


def test_the_first_processors_flags_and_model_name_are_read(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    monkeypatch.setattr(cpu, "CPUINFO", path)
    cpu.cpu_flags.cache_clear()
    try:
        assert cpu.cpu_flags() == frozenset({"fpu", "avx2", "avx512f", "amx_int8"})
        assert cpu.cpu_model() == "Intel(R) Xeon(R) Platinum 8480+"
        monkeypatch.setattr(cpu, "CPUINFO", tmp_path / "missing")
        cpu.cpu_flags.cache_clear()
        assert cpu.cpu_flags() == frozenset() and cpu.cpu_model() == ""
    finally:
        cpu.cpu_flags.cache_clear()
