"""Every adapter refuses a file it cannot read, before the first payload, naming what it
expected: a wrong header, an empty file, a file that is not JSON lines, unreadable bytes."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tailor.operators.replay.adapter_checks import EXPECTS
from tailor.operators.replay.adapters import ADAPTERS, AdapterError, read_payloads

RATINGS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
MOVIES = "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n2,Jumanji (1995),Fantasy\n"


def write(path: Path, text: str | bytes) -> Path:
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


#: (adapter, file name, content, what the refusal says it found)
WRONG_FILES = [
    ("csv", "movies.csv", MOVIES, "got columns movieId,title,genres"),
    ("csv", "events.csv", "", "got an empty file"),
    ("csv", "events.csv", "event_id,user_id,type,ts\n", "got a header and no rows"),
    ("csv", "events.csv", "user_id,type,ts\nu1,click,1700000000\n", "got columns user_id,type,ts"),
    ("csv", "events.csv", b"event_id,user_id\n\xff\xfe\x00\n", "got unreadable bytes"),
    ("movielens", "ratings.csv", MOVIES, "got columns movieId,title,genres"),
    ("movielens", "ratings.csv", "", "got an empty file"),
    ("movielens", "ratings.csv", "userId,movieId,rating,timestamp\n", "got a header and no rows"),
    ("otto", "train_events.csv", RATINGS, "got columns userId,movieId,rating,timestamp"),
    ("otto", "train.jsonl", '{"event_id": "e1", "user_id": "u1"}\n', "got a line"),
    ("otto", "train.jsonl", "\n\n", "got an empty file"),
    ("cdnow", "cdnow_master.csv", RATINGS, "got columns userId,movieId,rating,timestamp"),
    ("cdnow", "cdnow_master.csv", "", "got an empty file"),
    ("online-retail", "online_retail.csv.gz", RATINGS, "got columns userId,movieId"),
    ("online-retail", "online_retail.csv.gz", "", "got an empty file"),
    ("jsonl", "events.jsonl", RATINGS, "got no JSON object in its first lines"),
    ("jsonl", "events.jsonl", "[1]\n2\nnot json\n", "got no JSON object in its first lines"),
    ("jsonl", "events.jsonl", "", "got an empty file"),
]


@pytest.mark.parametrize(("adapter", "name", "content", "found"), WRONG_FILES)
def test_a_file_the_adapter_cannot_read_is_refused_before_any_payload(
    tmp_path: Path, adapter: str, name: str, content: str | bytes, found: str
) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(AdapterError) as refused:
        read_payloads(path, adapter)  # refused on the call, not on the first payload
    message = str(refused.value)
    assert message.startswith(f"{name}: the {adapter} adapter reads {EXPECTS[adapter]}; ")
    assert found in message and "\n" not in message


def test_every_adapter_is_covered() -> None:
    assert {adapter for adapter, *_ in WRONG_FILES} == set(ADAPTERS)


def test_movielens_movies_file_is_refused_with_a_hint(data_dir: Path) -> None:
    movies = data_dir / "movielens-latest-small" / "movies.csv"
    with pytest.raises(AdapterError) as refused:
        read_payloads(movies)
    assert str(refused.value) == (
        "movies.csv: the csv adapter reads canonical CSV with a header (event_id,user_id,type,ts "
        "and optional columns); got columns movieId,title,genres (MovieLens events are in "
        "ratings.csv, which reads movies.csv for genres)"
    )


def test_a_row_a_sorting_adapter_cannot_convert_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", RATINGS + "2,x,3.0,964982703\n")
    with pytest.raises(AdapterError, match=r"^ratings.csv: the movielens adapter .* got a row"):
        list(read_payloads(path))


def test_broken_lines_among_json_lines_still_pass_to_validation(tmp_path: Path) -> None:
    path = write(tmp_path / "events.jsonl", 'not json\n{"user_id": "u1"}\n')
    assert list(read_payloads(path)) == [b"not json", b'{"user_id": "u1"}']


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="no such file"):
        read_payloads(tmp_path / "events.jsonl")


def test_a_directory_is_refused_as_one(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").mkdir()
    with pytest.raises(AdapterError, match=r"events\.jsonl: a directory, not a file"):
        read_payloads(tmp_path / "events.jsonl")
