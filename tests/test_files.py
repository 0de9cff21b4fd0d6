import pytest

from spacy_rnn.files import atomic_output, read_text_lines, recover


def test_bom_is_removed_and_only_newlines_split(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffEU rejects\r\nin\u0085side\n\u2028\nlast".encode("utf-8"))
    assert list(read_text_lines(path)) == [(1, "EU rejects"), (2, "in\u0085side"), (3, "\u2028"), (4, "last")]


def test_undecodable_bytes_name_file_line_and_encoding(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"{path}:2: cannot decode byte b'\\xe9' at column 4 as UTF-8"):
        list(read_text_lines(path))


def test_atomic_file_and_directory(tmp_path):
    target = tmp_path / "out.json"
    with atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "old").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(folder) as tmp:
            tmp.mkdir()
            (tmp / "half").write_text("written")
            raise RuntimeError("crash while saving")
    assert [p.name for p in folder.iterdir()] == ["old"]  # untouched
    with atomic_output(folder) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("new")
    assert [p.name for p in folder.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_recover_after_a_crash_between_the_renames(tmp_path):
    folder = tmp_path / "model"
    aside = tmp_path / ".model.old-999"
    aside.mkdir()
    (aside / "weights").write_text("last good")
    half = tmp_path / ".model.new-999"
    half.mkdir()
    recover(folder)
    assert (folder / "weights").read_text() == "last good"
    assert not half.exists() and not aside.exists()
