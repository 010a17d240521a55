"""The runs list shows ids no two rows share, however close their start."""

from flowtrail.web.pages import SHORT_ID, distinct_prefix_length


def test_ids_started_in_different_milliseconds_show_the_short_prefix() -> None:
    ids = ["01a232af2ec6" + "1" * 20, "01a232af2bff" + "2" * 20]
    assert distinct_prefix_length(ids) == SHORT_ID


def test_ids_started_in_the_same_millisecond_show_until_they_differ() -> None:
    same_ms = "01a232af2ec2"
    ids = [same_ms + "7f3a" + "0" * 16, same_ms + "7f9c" + "0" * 16, "01a232af2b58" + "0" * 20]
    length = distinct_prefix_length(ids)
    assert length == len(same_ms) + 3
    assert len({i[:length] for i in ids}) == len(ids)


def test_an_empty_or_single_row_page_keeps_the_minimum() -> None:
    assert distinct_prefix_length([]) == SHORT_ID
    assert distinct_prefix_length(["abc"]) == SHORT_ID
